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

// Delta is an in-place change to the enforced set of addresses, with one
// meaning in every [Backend]: first every address of Remove is taken out,
// then every address of Add is put in (blocklistd's updates, which name
// entries rather than addresses, keep the same order). After Apply(d) a backend that enforced the set E enforces
//
//	(E \ ⋃Remove) ∪ ⋃Add
//
// exactly what Replace of that set would enforce. So a prefix named in both
// lists ends up blocked, and removing 10.0.0.0/24 then adding 10.0.0.7
// leaves 10.0.0.7 blocked: the additions are the part of the set that
// must hold afterwards, whatever the removals overlap. Removal never
// consults how an address came to be blocked; a caller that removes a
// prefix while a narrower or wider entry of its own still covers part of
// it must name that entry in Add (the agent does, see blocklist/agent).
type Delta struct {
	Add    []netip.Prefix
	Remove []netip.Prefix
}

// ApplyTo returns what a backend enforcing cur enforces after d: the
// reference every Backend.Apply is tested against.
func (d Delta) ApplyTo(cur *netipx.IPSet) (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	if cur != nil {
		b.AddSet(cur)
	}
	for _, p := range d.Remove {
		b.RemovePrefix(p.Masked())
	}
	for _, p := range d.Add {
		b.AddPrefix(p.Masked())
	}
	return b.IPSet()
}

// Backend enforces a blocklist on this host.
//
// Invariants every implementation keeps:
//   - Replace is atomic: no packet ever sees an empty or half-loaded set,
//     and a crash in the middle leaves the old set or the new one.
//   - Apply leaves exactly [Delta.ApplyTo] of the set before: removals
//     first, then additions, so an address both removed and added stays
//     blocked, and no address that stays blocked is ever let through
//     while the change is made. It changes no address outside the delta;
//     adding a present entry or removing an absent one is not an error.
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
