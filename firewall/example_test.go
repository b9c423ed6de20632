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
