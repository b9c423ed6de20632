package firewalltest_test

import (
	"context"
	"fmt"
	"net/netip"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// A unit test drives the code under test with the fake backend, then
// checks what it enforced and which calls it made.
func ExampleBackend() {
	var b firewalltest.Backend
	ctx := context.Background()
	var sb netipx.IPSetBuilder
	sb.AddPrefix(netip.MustParsePrefix("192.0.2.0/24"))
	set, _ := sb.IPSet()
	b.Replace(ctx, set)
	b.Apply(ctx, firewall.Delta{Add: []netip.Prefix{netip.MustParsePrefix("2001:db8::/48")}})
	fmt.Println(b.Prefixes())
	fmt.Println(b.Contains(netip.MustParseAddr("192.0.2.7")), b.Contains(netip.MustParseAddr("198.51.100.1")))
	for _, c := range b.Calls() {
		fmt.Println(c)
	}
	// Output:
	// [192.0.2.0/24 2001:db8::/48]
	// true false
	// Replace([192.0.2.0/24])
	// Apply(+[2001:db8::/48] -[])
}
