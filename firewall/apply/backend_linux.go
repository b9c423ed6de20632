//go:build linux

package apply

import (
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/firewall/pf"
)

var backendNames = []string{"nftables", "pf"}

// DefaultBackend is the backend of this platform.
const DefaultBackend = "nftables"

func newNftables(o BackendOptions) (firewall.Backend, error) {
	return nftables.New(nftables.Options{Table: o.Table, NetNS: o.NetNS, Reject: o.Reject, Forward: o.Forward, Logger: o.Logger})
}

func newPF(o BackendOptions) (firewall.Backend, error) {
	return pf.New(pf.Options{Table: o.Table, Pfctl: o.Pfctl, KillStates: o.KillStates, Logger: o.Logger})
}
