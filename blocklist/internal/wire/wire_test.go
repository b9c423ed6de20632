package wire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []Update{
		{Version: 1, Full: true},
		{Version: 42, Full: true, Entries: []netip.Prefix{p("10.0.0.0/8"), p("0.0.0.0/32"), p("255.255.255.255/32"), p("2001:db8::/32"), p("::/0"), p("2001:db8::1/128")}},
		{Version: 1 << 40, Add: []netip.Prefix{p("192.0.2.0/24")}, Remove: []netip.Prefix{p("2001:db8:1::/48"), p("198.51.100.7/32")}},
		{Version: 9, Full: true, Entries: randomHosts(1000)}, // compressed
	}
	for _, u := range tests {
		got, err := Decode(bytes.NewReader(Bytes(u)), 0)
		if err != nil {
			t.Fatalf("%+v: %v", u, err)
		}
		for _, s := range []*[]netip.Prefix{&u.Entries, &u.Add, &u.Remove} {
			slices.SortFunc(*s, comparePrefix)
		}
		if got.Version != u.Version || got.Full != u.Full || !equal(got.Entries, u.Entries) || !equal(got.Add, u.Add) || !equal(got.Remove, u.Remove) {
			t.Errorf("round trip of %+v = %+v", u, got)
		}
	}
}

func equal(a, b []netip.Prefix) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

func TestEncodeRefusesUnmasked(t *testing.T) {
	u := Update{Full: true, Entries: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}}
	if err := Encode(&bytes.Buffer{}, u, 1); err == nil {
		t.Fatal("unmasked prefix encoded")
	}
}

func TestDecodeLimits(t *testing.T) {
	u := Update{Version: 1, Full: true, Entries: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32")}}
	if _, err := Decode(bytes.NewReader(Bytes(u)), 1); err == nil {
		t.Fatal("decoded more entries than allowed")
	}
	for _, bad := range [][]byte{nil, []byte("RBL"), []byte("XXXX"), []byte("RBL1\x01\x1f\x8b"), []byte("RBL1\x07"), []byte("RBL1\x00\x01\x05\x02\x20")} {
		if _, err := Decode(bytes.NewReader(bad), 0); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

// Random IPv4 host entries: the case the 10 MB budget is about.
func randomHosts(n int) []netip.Prefix {
	r := rand.New(rand.NewPCG(1, 2))
	seen := make(map[uint32]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		v := r.Uint32()
		if seen[v] {
			continue
		}
		seen[v] = true
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], v)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	return out
}

func TestMillionEntriesUnderTenMB(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes a million entries")
	}
	b := Bytes(Update{Version: 1, Full: true, Entries: randomHosts(1_000_000)})
	if len(b) >= 10<<20 {
		t.Fatalf("1,000,000-entry snapshot is %d bytes, want < 10 MB", len(b))
	}
}

func BenchmarkSnapshotMillion(b *testing.B) {
	entries := randomHosts(1_000_000)
	var size int
	for b.Loop() {
		size = len(Bytes(Update{Version: 1, Full: true, Entries: entries}))
	}
	b.ReportMetric(float64(size), "bytes/snapshot")
	b.ReportMetric(float64(size)/1e6, "bytes/entry")
}

func BenchmarkDecodeMillion(b *testing.B) {
	data := Bytes(Update{Version: 1, Full: true, Entries: randomHosts(1_000_000)})
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "bytes/snapshot")
}

func FuzzDecode(f *testing.F) {
	f.Add(Bytes(Update{Version: 3, Full: true, Entries: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}))
	f.Add(Bytes(Update{Version: 4, Add: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}))
	f.Add([]byte("RBL1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := Decode(bytes.NewReader(data), 1000)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := Decode(bytes.NewReader(Bytes(u)), 1000)
		if err != nil || again.Version != u.Version || again.Full != u.Full ||
			len(again.Entries) != len(u.Entries) || len(again.Add) != len(u.Add) || len(again.Remove) != len(u.Remove) {
			t.Fatalf("re-encode of %+v: %+v, %v", u, again, err)
		}
	})
}
