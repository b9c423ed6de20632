package server

import (
	"net/netip"
	"slices"
	"testing"
)

func TestPrefixIndex(t *testing.T) {
	ix := newPrefixIndex()
	members := []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "10.1.2.4/32", "11.0.0.1/32",
		"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128", "2001:db9::/64"}
	for _, m := range members {
		ix.add(pfx(m))
	}
	ix.add(pfx("10.1.0.0/16")) // refcounted
	tests := []struct {
		r    string
		want []string
	}{
		{"10.0.0.0/8", []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "10.1.2.4/32"}},
		{"10.1.2.0/24", []string{"10.1.2.3/32", "10.1.2.4/32"}},
		{"0.0.0.0/0", []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "10.1.2.4/32", "11.0.0.1/32"}},
		{"2001:db8::/32", []string{"2001:db8:1::/48", "2001:db8:1::1/128", "2001:db8::/32"}}, // sorted as strings
		{"2001:db8:1::/64", []string{"2001:db8:1::1/128"}},
		{"2001:db8:1::1/128", []string{"2001:db8:1::1/128"}},
		{"192.0.2.0/24", nil},
	}
	for _, tc := range tests {
		var got []string
		ix.within(pfx(tc.r), func(p netip.Prefix) { got = append(got, p.String()) })
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("within(%s) = %v, want %v", tc.r, got, tc.want)
		}
	}
	if top, ok := ix.topAncestor(pfx("10.1.2.3/32")); !ok || top != pfx("10.0.0.0/8") {
		t.Errorf("topAncestor = %v %v", top, ok)
	}
	if !ix.hasStrictAncestor(pfx("2001:db8:1::/48")) || ix.hasStrictAncestor(pfx("2001:db9::/64")) {
		t.Error("hasStrictAncestor wrong")
	}
	if ix.remove(pfx("10.1.0.0/16")) || !ix.has(pfx("10.1.0.0/16")) || !ix.remove(pfx("10.1.0.0/16")) || ix.has(pfx("10.1.0.0/16")) {
		t.Error("refcount wrong")
	}
	if ix.len() != len(members)-1 {
		t.Errorf("len = %d", ix.len())
	}
}

func TestSubPrefix(t *testing.T) {
	tests := []struct {
		r    string
		b    int
		i    uint64
		want string
	}{
		{"10.0.0.0/8", 16, 0, "10.0.0.0/16"},
		{"10.0.0.0/8", 16, 255, "10.255.0.0/16"},
		{"10.1.2.0/24", 32, 7, "10.1.2.7/32"},
		{"2001:db8::/32", 48, 1, "2001:db8:1::/48"},
		{"2001:db8::/120", 128, 255, "2001:db8::ff/128"},
		{"2001:db8::/61", 64, 5, "2001:db8:0:5::/64"},
	}
	for _, tc := range tests {
		if got := subPrefix(pfx(tc.r), tc.b, tc.i); got != pfx(tc.want) {
			t.Errorf("subPrefix(%s, %d, %d) = %v, want %s", tc.r, tc.b, tc.i, got, tc.want)
		}
	}
}
