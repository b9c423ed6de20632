// Package firewall makes a host drop traffic from a set of addresses and
// prefixes. A [Backend] (nftables on Linux, pf through pfctl on the BSDs)
// enforces a set; the safety rules that no backend may skip (allowlist,
// maximum prefix width) are applied before anything reaches the kernel.
//
// # How the pieces fit
//
//   - [Policy] holds the safety rules. [Policy.Build] turns entries into a
//     normalized netipx.IPSet (merged, allowlist subtracted) for
//     [Backend.Replace]; [Policy.BuildDelta] does the same for
//     [Backend.Apply].
//   - For million-entry loads, [Policy.BuildSet] streams entries into the
//     compact [Set], and [Replace] hands it to a backend that implements
//     [SetReplacer] without ever building an IPSet.
//   - Backends: firewall/nftables (Linux, netlink) and firewall/pf
//     (pfctl); firewall/firewalltest is an in-memory fake for tests;
//     firewall/apply is the one-shot `blocklist-agent apply` and `flush`.
package firewall

import (
	"context"
	"net/netip"

	"go4.org/netipx"
)

// Delta is an in-place change to the enforced set.
type Delta struct {
	Add    []netip.Prefix
	Remove []netip.Prefix
}

// Backend enforces a blocklist on this host.
//
// Invariants every implementation keeps:
//   - Replace is atomic: no packet ever sees an empty or half-loaded set,
//     and a crash in the middle leaves the old set or the new one.
//   - Apply changes only the entries named; adding a present entry or
//     removing an absent one is not an error.
//   - Current reports what the kernel enforces, not what was last asked.
//   - Remove takes away everything Rampart installed and nothing else.
//
// Sets reaching a Backend are already normalized (merged, allowlist
// subtracted); backends do not re-check policy.
type Backend interface {
	Replace(ctx context.Context, set *netipx.IPSet) error
	Apply(ctx context.Context, d Delta) error
	Current(ctx context.Context) (*netipx.IPSet, error)
	Remove(ctx context.Context) error
}
