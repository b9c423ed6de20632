//go:build linux

package nftables

import (
	"net/netip"
	"testing"

	nft "github.com/google/nftables"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
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

func TestPlanDeltaRemoveWins(t *testing.T) {
	b, _ := New(Options{})
	b.ranges = &netipx.IPSet{}
	plan, err := b.planDelta(deltaOf([]string{"192.0.2.1/32", "192.0.2.2/32"}, []string{"192.0.2.0/30"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.addSingles) != 0 || len(plan.delSingles) != 4 {
		t.Errorf("add %v del %v", plan.addSingles, plan.delSingles)
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
