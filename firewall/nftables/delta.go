//go:build linux

package nftables

import (
	"net/netip"
	"slices"

	nft "github.com/google/nftables"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// enumerateBits bounds the removals whose single addresses are deleted
// one by one (2^12 = 4096 addresses); wider removals look the hash sets up
// in the kernel instead.
const enumerateBits = 12

type deltaPlan struct {
	addSingles, delSingles []netip.Addr
	addRanges, delRanges   []netipx.IPRange
	ranges                 *netipx.IPSet // the interval sets afterwards
}

// elements counts the set elements the plan touches.
func (p deltaPlan) elements() int {
	return len(p.addSingles) + len(p.delSingles) + 2*(len(p.addRanges)+len(p.delRanges))
}

func (p deltaPlan) empty() bool {
	return len(p.addSingles)+len(p.delSingles)+len(p.addRanges)+len(p.delRanges) == 0
}

// planDelta works out the element changes for d, removals first and
// additions after them, as [firewall.Delta] says: an address both removed
// and added stays blocked. Single addresses go to and from the hash sets
// directly; the batch deletes before it adds, so the same address in both
// lists ends up present. Interval sets must never hold overlapping
// intervals, so the new intervals are computed from the cached ones
// (splitting around removals, then merging additions) and only the
// intervals that differ are deleted and added. A hash-set address inside
// an interval is harmless (both drop it) and is left as it is.
// singlesIn lists the hash-set addresses inside removals too wide to
// enumerate (the kernel's, in [Backend.Apply]).
func (b *Backend) planDelta(d firewall.Delta, singlesIn func(wide []netip.Prefix) ([]netip.Addr, error)) (deltaPlan, error) {
	var plan deltaPlan
	var rb netipx.IPSetBuilder
	rb.AddSet(b.ranges)
	var wide []netip.Prefix
	for _, p := range d.Remove {
		p = p.Masked()
		rb.RemovePrefix(p)
		switch {
		case p.IsSingleIP():
			plan.delSingles = append(plan.delSingles, p.Addr())
		case p.Addr().BitLen()-p.Bits() <= enumerateBits:
			for a := p.Addr(); a.IsValid() && p.Contains(a); a = a.Next() {
				plan.delSingles = append(plan.delSingles, a)
			}
		default:
			wide = append(wide, p)
		}
	}
	for _, p := range d.Add {
		p = p.Masked()
		if p.IsSingleIP() {
			plan.addSingles = append(plan.addSingles, p.Addr())
		} else {
			rb.AddPrefix(p)
		}
	}
	if len(wide) > 0 {
		in, err := singlesIn(wide)
		if err != nil {
			return plan, err
		}
		plan.delSingles = append(plan.delSingles, in...)
	}
	// Deleting one element twice in a batch fails the whole batch.
	plan.delSingles = uniqueAddrs(plan.delSingles)
	plan.addSingles = uniqueAddrs(plan.addSingles)
	if !touchesRanges(b.ranges, d) {
		// The common delta (single addresses in and out, none inside a
		// blocked range) leaves the interval sets alone.
		plan.ranges = b.ranges
		return plan, nil
	}
	newRanges, err := rb.IPSet()
	if err != nil {
		return plan, err
	}
	plan.ranges = newRanges
	plan.delRanges, plan.addRanges = diffRanges(b.ranges.Ranges(), newRanges.Ranges())
	return plan, nil
}

func uniqueAddrs(as []netip.Addr) []netip.Addr {
	slices.SortFunc(as, netip.Addr.Compare)
	return slices.Compact(as)
}

// singlesIn reads the hash sets from the kernel and returns the addresses
// inside wide.
func (b *Backend) singlesIn(wide []netip.Prefix) ([]netip.Addr, error) {
	var out []netip.Addr
	err := b.readSets(func(s *nft.Set, elems []nft.SetElement) error {
		for _, e := range elems {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				continue
			}
			for _, w := range wide {
				if w.Contains(a) {
					out = append(out, a)
					break
				}
			}
		}
		return nil
	}, setAddr4, setAddr6)
	return out, err
}

// diffRanges returns the ranges only in old and those only in new; both
// inputs are sorted and non-overlapping.
func diffRanges(old, new []netipx.IPRange) (gone, added []netipx.IPRange) {
	i, j := 0, 0
	for i < len(old) && j < len(new) {
		switch {
		case old[i] == new[j]:
			i++
			j++
		case less(old[i], new[j]):
			gone = append(gone, old[i])
			i++
		default:
			added = append(added, new[j])
			j++
		}
	}
	gone = append(gone, old[i:]...)
	added = append(added, new[j:]...)
	return gone, added
}

func less(a, b netipx.IPRange) bool {
	if c := a.From().Compare(b.From()); c != 0 {
		return c < 0
	}
	return a.To().Less(b.To())
}

// touchesRanges reports whether d can change the interval sets: it adds
// a prefix wider than one address, or removes anything that overlaps an
// installed interval.
func touchesRanges(ranges *netipx.IPSet, d firewall.Delta) bool {
	for _, p := range d.Add {
		if !p.IsSingleIP() {
			return true
		}
	}
	for _, p := range d.Remove {
		if ranges.OverlapsPrefix(p.Masked()) {
			return true
		}
	}
	return false
}
