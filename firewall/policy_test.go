package firewall

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func pfxs(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func hostAddrs(ss ...string) func() ([]netip.Addr, error) {
	return func() ([]netip.Addr, error) {
		var as []netip.Addr
		for _, s := range ss {
			as = append(as, netip.MustParseAddr(s))
		}
		return as, nil
	}
}

func TestPolicyBuild(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		in     []netip.Prefix
		want   []netip.Prefix
		stats  Stats
	}{
		{
			name:  "merge overlaps and neighbours",
			in:    pfxs("192.0.2.0/25", "192.0.2.128/25", "192.0.2.7/32", "198.51.100.1/32", "198.51.100.1/32"),
			want:  pfxs("192.0.2.0/24", "198.51.100.1/32"),
			stats: Stats{Input: 5, Addresses: 1, Prefixes: 1, Ranges: 2},
		},
		{
			name:  "loopback and link-local never blocked",
			in:    pfxs("127.0.0.1/32", "169.254.1.1/32", "::1/128", "fe80::1/128", "192.0.2.1/32"),
			want:  pfxs("192.0.2.1/32"),
			stats: Stats{Input: 5, Allowlisted: 4, Addresses: 1, Ranges: 1},
		},
		{
			name:   "management prefix carved out of a blocked prefix",
			policy: Policy{Allow: pfxs("10.1.0.0/17")},
			in:     pfxs("10.1.0.0/16"),
			want:   pfxs("10.1.128.0/17"),
			stats:  Stats{Input: 1, Allowlisted: 1, Prefixes: 1, Ranges: 1},
		},
		{
			name:   "host's own address",
			policy: Policy{HostAddrs: hostAddrs("203.0.113.5", "2001:db8::5")},
			in:     pfxs("203.0.113.4/31", "2001:db8::5/128"),
			want:   pfxs("203.0.113.4/32"),
			stats:  Stats{Input: 2, Allowlisted: 2, Addresses: 1, Ranges: 1},
		},
		{
			name:  "broad refused",
			in:    pfxs("0.0.0.0/0", "10.0.0.0/7", "10.0.0.0/8", "2000::/3", "2001:db8::/32"),
			want:  pfxs("10.0.0.0/8", "2001:db8::/32"),
			stats: Stats{Input: 5, Refused: 3, Prefixes: 2, Ranges: 2},
		},
		{
			name:   "broad allowed, allowlist still holds",
			policy: Policy{AllowBroad: true, HostAddrs: hostAddrs()},
			in:     pfxs("0.0.0.0/1"),
			stats:  Stats{Input: 1, Allowlisted: 1},
		},
		{
			name:  "mapped addresses unmapped",
			in:    pfxs("::ffff:192.0.2.1/128"),
			want:  pfxs("192.0.2.1/32"),
			stats: Stats{Input: 1, Addresses: 1, Ranges: 1},
		},
		{
			name:  "invalid refused",
			in:    []netip.Prefix{{}, netip.MustParsePrefix("192.0.2.1/32")},
			want:  pfxs("192.0.2.1/32"),
			stats: Stats{Input: 2, Refused: 1, Addresses: 1, Ranges: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.policy.HostAddrs == nil {
				tt.policy.HostAddrs = hostAddrs()
			}
			set, st, err := tt.policy.Build(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "broad allowed, allowlist still holds" {
				// 0.0.0.0/1 minus 127/8: check membership instead of
				// spelling out every prefix.
				if !set.Contains(netip.MustParseAddr("1.1.1.1")) || set.Contains(netip.MustParseAddr("127.0.0.1")) {
					t.Errorf("set = %v", set.Prefixes())
				}
				return
			}
			if got := set.Prefixes(); !slices.Equal(got, tt.want) {
				t.Errorf("set = %v, want %v", got, tt.want)
			}
			if st != tt.stats {
				t.Errorf("stats = %+v, want %+v", st, tt.stats)
			}
		})
	}
}

func TestPolicyHostAddrsErrorFailsClosed(t *testing.T) {
	p := Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, errors.New("no netlink") }}
	if _, _, err := p.Build(pfxs("192.0.2.1/32")); err == nil {
		t.Fatal("Build succeeded without the host's addresses")
	}
}

func TestPolicyDefaultHostAddrs(t *testing.T) {
	addrs, err := InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var in []netip.Prefix
	for _, a := range addrs {
		in = append(in, netip.PrefixFrom(a, a.BitLen()))
	}
	set, _, err := Policy{}.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Prefixes(); len(got) != 0 {
		t.Errorf("the host's own addresses were blocked: %v", got)
	}
}

func TestPolicyBuildDelta(t *testing.T) {
	p := Policy{Allow: pfxs("192.0.2.0/28"), HostAddrs: hostAddrs()}
	d, _, err := p.BuildDelta(Delta{
		Add:    pfxs("192.0.2.0/27", "0.0.0.0/0"),
		Remove: pfxs("::ffff:198.51.100.0/120"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := pfxs("192.0.2.16/28"); !slices.Equal(d.Add, want) {
		t.Errorf("add = %v, want %v", d.Add, want)
	}
	if want := pfxs("198.51.100.0/24"); !slices.Equal(d.Remove, want) {
		t.Errorf("remove = %v, want %v", d.Remove, want)
	}
}
