package firewalltest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

func TestBackend(t *testing.T) {
	ctx := context.Background()
	var b Backend
	var sb netipx.IPSetBuilder
	sb.AddPrefix(netip.MustParsePrefix("192.0.2.0/24"))
	set, _ := sb.IPSet()
	if err := b.Replace(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, firewall.Delta{
		Add:    []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")},
		Remove: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")},
	}); err != nil {
		t.Fatal(err)
	}
	cur, err := b.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("2001:db8::1/128")}
	if got := cur.Prefixes(); !slices.Equal(got, want) {
		t.Errorf("current = %v, want %v", got, want)
	}
	b.Err = errors.New("netlink down")
	if err := b.Remove(ctx); err == nil {
		t.Error("Remove ignored Err")
	}
	if !b.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a failed Remove emptied the set")
	}
	b.Err = nil
	if err := b.Remove(ctx); err != nil || len(b.Prefixes()) != 0 {
		t.Errorf("Remove: %v, left %v", err, b.Prefixes())
	}
	var methods []string
	for _, c := range b.Calls() {
		methods = append(methods, c.Method)
	}
	if want := []string{"Replace", "Apply", "Current", "Remove", "Remove"}; !slices.Equal(methods, want) {
		t.Errorf("calls = %v, want %v", methods, want)
	}
}
