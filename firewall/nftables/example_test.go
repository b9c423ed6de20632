//go:build linux

package nftables_test

import (
	"context"
	"log"
	"log/slog"
	"net/netip"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/nftables"
)

func ExampleNew() {
	fw, err := nftables.New(nftables.Options{Reject: true, Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	set, _, err := firewall.Policy{}.Build([]netip.Prefix{
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("198.51.100.0/24"),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := fw.Replace(ctx, set); err != nil { // one netlink transaction
		log.Fatal(err)
	}
	// Later, in place:
	err = fw.Apply(ctx, firewall.Delta{Remove: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}})
	if err != nil {
		log.Fatal(err)
	}
}
