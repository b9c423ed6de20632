package apply_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/apply"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

func ExampleRun() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	list := filepath.Join(dir, "drop.txt")
	os.WriteFile(list, []byte("1.10.16.0/20 ; SBL256894\n192.0.2.9\n"), 0o644)

	// In production: apply.OpenBackend("nftables", apply.BackendOptions{}).
	var fw firewalltest.Backend
	sum, err := apply.Run(context.Background(), &fw, apply.Config{
		Files:  []string{list},
		Policy: firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum.Stats.Addresses, sum.Stats.Prefixes, fw.Prefixes())
	// Output: 1 1 [1.10.16.0/20 192.0.2.9/32]
}
