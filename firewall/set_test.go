package firewall

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

// reference computes Build's answer with netipx alone.
func reference(p Policy, in []netip.Prefix) (*netipx.IPSet, Stats) {
	allow, _ := p.Allowlist()
	var b netipx.IPSetBuilder
	for _, x := range in {
		x = unmap(x)
		if p.Check(x) == nil {
			b.AddPrefix(x.Masked())
		}
	}
	b.RemoveSet(allow)
	set, _ := b.IPSet()
	var st Stats
	for _, r := range set.Ranges() {
		st.Ranges++
		for _, p := range r.Prefixes() {
			if p.IsSingleIP() {
				st.Addresses++
			} else {
				st.Prefixes++
			}
		}
	}
	return set, st
}

// prefixesFrom decodes fuzz bytes into prefixes: 6 bytes per IPv4 entry
// (tag, 4 address bytes, length), 18 per IPv6 entry, clustered in small
// ranges so that they overlap and touch.
func prefixesFrom(data []byte) []netip.Prefix {
	var ps []netip.Prefix
	for len(data) > 0 {
		tag := data[0]
		data = data[1:]
		if tag%2 == 0 && len(data) >= 5 {
			a := netip.AddrFrom4([4]byte{10 + tag%3, data[1] % 4, data[2], data[3]})
			ps = append(ps, netip.PrefixFrom(a, 16+int(data[4])%17).Masked())
			data = data[5:]
		} else if len(data) >= 17 {
			var b [16]byte
			copy(b[:], data[:16])
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			b[4] %= 4
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(b), 32+int(data[16])%97).Masked())
			data = data[17:]
		} else {
			break
		}
	}
	return ps
}

func FuzzBuildSet(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 16, 2, 1, 2, 3, 5, 32}, []byte{0, 1, 2, 3, 4, 30})
	f.Add(make([]byte, 36), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100})
	f.Fuzz(func(t *testing.T, entries, allow []byte) {
		p := Policy{Allow: prefixesFrom(allow), HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}
		in := prefixesFrom(entries)
		want, wantStats := reference(p, in)
		set, st, err := p.BuildSet(slices.Values(in))
		if err != nil {
			t.Fatal(err)
		}
		got := set.IPSet()
		if !got.Equal(want) {
			t.Fatalf("BuildSet = %v\nnetipx   = %v", got.Prefixes(), want.Prefixes())
		}
		if len(got.Ranges()) != set.Len() {
			t.Errorf("Set holds %d ranges, normalized %d: not merged", set.Len(), len(got.Ranges()))
		}
		st.Input, st.Refused, st.Allowlisted = 0, 0, 0
		if st != wantStats {
			t.Errorf("stats %+v, want %+v", st, wantStats)
		}
	})
}

func TestBuildSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 200; i++ {
		buf := make([]byte, 6*50)
		for j := range buf {
			buf[j] = byte(rng.IntN(256))
		}
		allow := make([]byte, 18)
		binary.BigEndian.PutUint64(allow, rng.Uint64())
		p := Policy{Allow: prefixesFrom(allow), HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}
		in := prefixesFrom(buf)
		want, _ := reference(p, in)
		set, _, _ := p.BuildSet(slices.Values(in))
		if got := set.IPSet(); !got.Equal(want) {
			t.Fatalf("case %d: BuildSet = %v, want %v", i, got.Prefixes(), want.Prefixes())
		}
	}
}

func TestSetEdges(t *testing.T) {
	p := Policy{AllowBroad: true, HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}
	in := []netip.Prefix{
		netip.MustParsePrefix("255.255.255.254/31"), netip.MustParsePrefix("255.255.255.252/31"),
		netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"),
		netip.MustParsePrefix("::/8"),
	}
	want, wantStats := reference(p, in)
	set, st, _ := p.BuildSet(slices.Values(in))
	if !set.IPSet().Equal(want) {
		t.Errorf("got %v, want %v", set.IPSet().Prefixes(), want.Prefixes())
	}
	st.Input, st.Allowlisted = 0, 0
	if st != wantStats {
		t.Errorf("stats %+v, want %+v", st, wantStats)
	}
	var singles int
	for range set.Singles4() {
		singles++
	}
	for range set.Singles6() {
		singles++
	}
	var wide int
	for range set.Wide() {
		wide++
	}
	if singles+wide != set.Len() {
		t.Errorf("%d singles + %d wide != %d ranges", singles, wide, set.Len())
	}
}

type ipsetOnly struct{ got *netipx.IPSet }

func (b *ipsetOnly) Replace(_ context.Context, s *netipx.IPSet) error { b.got = s; return nil }
func (b *ipsetOnly) Apply(context.Context, Delta) error               { return nil }
func (b *ipsetOnly) Current(context.Context) (*netipx.IPSet, error)   { return b.got, nil }
func (b *ipsetOnly) Remove(context.Context) error                     { return nil }

func TestReplaceConverts(t *testing.T) {
	set, _, _ := Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}.BuildSet(slices.Values([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}))
	var b ipsetOnly
	if err := Replace(context.Background(), &b, set); err != nil {
		t.Fatal(err)
	}
	if got := b.got.Prefixes(); len(got) != 1 || got[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("backend got %v", got)
	}
}
