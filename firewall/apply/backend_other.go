//go:build !linux

package apply

import (
	"errors"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/pf"
)

var backendNames = []string{"pf"}

// DefaultBackend is the backend of this platform.
const DefaultBackend = "pf"

func newNftables(BackendOptions) (firewall.Backend, error) {
	return nil, errors.New("the nftables backend exists on Linux only; use --backend pf")
}

func newPF(o BackendOptions) (firewall.Backend, error) {
	return pf.New(pf.Options{Table: o.Table, Pfctl: o.Pfctl, KillStates: o.KillStates, Logger: o.Logger})
}
