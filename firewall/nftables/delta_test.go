//go:build linux

package nftables

import (
	"net/netip"
	"slices"
	"testing"

	nft "github.com/google/nftables"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

func deltaOf(add, remove []string) firewall.Delta {
	var d firewall.Delta
	for _, s := range add {
		d.Add = append(d.Add, netip.MustParsePrefix(s))
	}
	for _, s := range remove {
		d.Remove = append(d.Remove, netip.MustParsePrefix(s))
	}
	return d
}

func TestElementRanges(t *testing.T) {
	k := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	interval := &nft.Set{Interval: true}
	got, err := elementRanges(interval, []nft.SetElement{
		{Key: k("198.51.101.0"), IntervalEnd: true},
		{Key: k("198.51.100.0")},
		{Key: k("0.0.0.0"), IntervalEnd: true}, // lone end some tools add
		{Key: k("198.51.101.0")},               // adjacent interval
		{Key: k("198.51.102.0"), IntervalEnd: true},
		{Key: k("255.255.255.0")}, // runs to the end
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []netipx.IPRange{
		netipx.MustParseIPRange("198.51.100.0-198.51.100.255"),
		netipx.MustParseIPRange("198.51.101.0-198.51.101.255"),
		netipx.MustParseIPRange("255.255.255.0-255.255.255.255"),
	}
	if len(got) != len(want) {
		t.Fatalf("ranges = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("range %d = %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := elementRanges(interval, []nft.SetElement{{Key: k("10.0.0.0")}, {Key: k("10.0.1.0")}}); err == nil {
		t.Error("two starts in a row accepted")
	}
	if _, err := elementRanges(&nft.Set{}, []nft.SetElement{{Key: []byte{1, 2, 3}}}); err == nil {
		t.Error("3-byte key accepted")
	}
}

func TestDiffRanges(t *testing.T) {
	r := netipx.MustParseIPRange
	gone, added := diffRanges(
		[]netipx.IPRange{r("10.0.0.0-10.0.0.255"), r("10.0.2.0-10.0.2.255")},
		[]netipx.IPRange{r("10.0.0.0-10.0.0.255"), r("10.0.2.0-10.0.3.255"), r("10.0.9.0-10.0.9.9")},
	)
	if len(gone) != 1 || gone[0] != r("10.0.2.0-10.0.2.255") || len(added) != 2 {
		t.Errorf("gone %v added %v", gone, added)
	}
}

// TestPlanDeltaAddAfterRemove is issue 12's hole: a /30 replacing a
// banned address inside it, then the /30 lifted while the address stays.
func TestPlanDeltaAddAfterRemove(t *testing.T) {
	k := newKernelModel(t, "10.77.0.94/32")
	k.apply(t, deltaOf([]string{"10.77.0.92/30"}, []string{"10.77.0.94/32"}))
	k.check(t, "10.77.0.92/30")
	k.apply(t, deltaOf([]string{"10.77.0.94/32"}, []string{"10.77.0.92/30"}))
	k.check(t, "10.77.0.94/32")
	k.apply(t, deltaOf([]string{"192.0.2.1/32", "192.0.2.2/32"}, []string{"192.0.2.0/30", "192.0.2.1/32"}))
	k.check(t, "10.77.0.94/32", "192.0.2.1/32", "192.0.2.2/32")
}

// TestPlanDeltaDifferential runs random deltas through planDelta and an
// in-memory model of the four sets that fails as the kernel would (an
// interval deleted that is not there, intervals that overlap), and
// compares each result with firewall.Delta.ApplyTo. The kernel itself
// runs the same generator in test/firewall.
func TestPlanDeltaDifferential(t *testing.T) {
	steps := 3000
	if testing.Short() {
		steps = 500
	}
	for seed := uint64(1); seed <= 4; seed++ {
		g := firewalltest.NewPrefixes(seed)
		var ref *netipx.IPSet
		initial := g.List(6)
		k := newKernelModel(t)
		k.replace(t, initial)
		ref, _ = firewall.Delta{Add: initial}.ApplyTo(nil)
		for i := range steps {
			d := g.Delta()
			k.apply(t, d)
			ref, _ = d.ApplyTo(ref)
			if ok, diff := firewalltest.Equal(k.set(), ref); !ok {
				t.Fatalf("seed %d step %d: after %v: %s", seed, i, d, diff)
			}
		}
	}
}

// kernelModel holds what the kernel would: the hash sets' addresses and
// the interval sets' intervals, changed element by element.
type kernelModel struct {
	b         *Backend
	singles   map[netip.Addr]bool
	intervals []netipx.IPRange
}

func newKernelModel(t *testing.T, prefixes ...string) *kernelModel {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := &kernelModel{b: b}
	var ps []netip.Prefix
	for _, s := range prefixes {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	k.replace(t, ps)
	return k
}

func (k *kernelModel) replace(t *testing.T, ps []netip.Prefix) {
	set, err := firewall.Delta{Add: ps}.ApplyTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	singles, ranges := splitRanges(set.Ranges())
	k.singles = map[netip.Addr]bool{}
	for _, a := range singles {
		k.singles[a] = true
	}
	k.intervals = ranges
	k.b.ranges = rangesOnly(ranges)
}

func (k *kernelModel) singlesIn(wide []netip.Prefix) ([]netip.Addr, error) {
	var out []netip.Addr
	for a := range k.singles {
		for _, w := range wide {
			if w.Contains(a) {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// apply plans d and plays the batch in the order deltaBatch encodes it.
func (k *kernelModel) apply(t *testing.T, d firewall.Delta) {
	t.Helper()
	plan, err := k.b.planDelta(d, k.singlesIn)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range plan.delSingles {
		k.singles[a] = true // NEWSETELEM: present either way
	}
	for _, a := range plan.delSingles {
		if !k.singles[a] {
			t.Fatalf("%v: deletes %s twice: the kernel refuses the batch", d, a)
		}
		delete(k.singles, a)
	}
	for _, r := range plan.delRanges {
		i := slices.Index(k.intervals, r)
		if i < 0 {
			t.Fatalf("%v: deletes interval %s, not installed (%v): the kernel refuses the batch", d, r, k.intervals)
		}
		k.intervals = slices.Delete(k.intervals, i, i+1)
	}
	for _, r := range plan.addRanges {
		for _, have := range k.intervals {
			if r.Overlaps(have) {
				t.Fatalf("%v: adds interval %s overlapping %s: the kernel refuses the batch", d, r, have)
			}
		}
		k.intervals = append(k.intervals, r)
	}
	for _, a := range plan.addSingles {
		k.singles[a] = true
	}
	k.b.ranges = plan.ranges
	if ok, diff := firewalltest.Equal(rangesOnly(k.intervals), plan.ranges); !ok {
		t.Fatalf("%v: cached intervals differ from the installed ones: %s", d, diff)
	}
}

func (k *kernelModel) set() *netipx.IPSet {
	var b netipx.IPSetBuilder
	for a := range k.singles {
		b.Add(a)
	}
	for _, r := range k.intervals {
		b.AddRange(r)
	}
	s, _ := b.IPSet()
	return s
}

func (k *kernelModel) check(t *testing.T, want ...string) {
	t.Helper()
	var b netipx.IPSetBuilder
	for _, s := range want {
		b.AddPrefix(netip.MustParsePrefix(s))
	}
	w, _ := b.IPSet()
	if ok, diff := firewalltest.Equal(k.set(), w); !ok {
		t.Error(diff)
	}
}

func TestNewRejectsBadTable(t *testing.T) {
	for _, name := range []string{"a b", "x;y", "tab\"le"} {
		if _, err := New(Options{Table: name}); err == nil {
			t.Errorf("New accepted table %q", name)
		}
	}
	if _, err := New(Options{NetNS: "/nonexistent/netns"}); err == nil {
		t.Error("New accepted a missing namespace")
	}
}
