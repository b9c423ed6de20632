package pf_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/pf"
)

func ExampleNew() {
	// pf.conf must declare the table (see pf.ConfLines).
	fw, err := pf.New(pf.Options{Table: "rampart", KillStates: true})
	if err != nil {
		log.Fatal(err)
	}
	set, _, err := firewall.Policy{}.Build([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if err != nil {
		log.Fatal(err)
	}
	if err := fw.Replace(context.Background(), set); err != nil {
		log.Fatal(err) // e.g. pf.ErrNoTable, with the pf.conf lines to add
	}
}

func ExampleConfLines() {
	fmt.Print(pf.ConfLines("rampart"))
	// Output:
	// table <rampart> persist
	// block drop in quick from <rampart>
}
