package firewall_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

func ExamplePolicy_Build() {
	policy := firewall.Policy{
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")}, // the bastion
		// A fixed host address keeps the example deterministic; leave
		// HostAddrs nil to protect every local interface address.
		HostAddrs: func() ([]netip.Addr, error) { return nil, nil },
	}
	set, stats, err := policy.Build([]netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/25"),
		netip.MustParsePrefix("198.51.100.128/25"),
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("0.0.0.0/0"),
	})
	if err != nil {
		panic(err)
	}
	var fw firewalltest.Backend // or nftables.New(...), pf.New(...)
	if err := fw.Replace(context.Background(), set); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", stats)
	fmt.Println(fw.Contains(netip.MustParseAddr("198.51.100.9")), fw.Contains(netip.MustParseAddr("198.51.100.10")))
	// Output:
	// {Input:4 Refused:1 Allowlisted:2 Addresses:1 Prefixes:7 Ranges:2}
	// true false
}

// A delta takes its removals out first and puts its additions in after
// them: lifting a /30 while a banned address inside it stays.
func ExampleDelta_ApplyTo() {
	p := netip.MustParsePrefix
	before, _ := firewall.Delta{Add: []netip.Prefix{p("10.77.0.92/30")}}.ApplyTo(nil)
	after, err := firewall.Delta{
		Remove: []netip.Prefix{p("10.77.0.92/30")},
		Add:    []netip.Prefix{p("10.77.0.94/32")},
	}.ApplyTo(before)
	if err != nil {
		panic(err)
	}
	fmt.Println(after.Prefixes())
	// Output:
	// [10.77.0.94/32]
}
