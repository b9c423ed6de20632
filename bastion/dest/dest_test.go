package dest_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion/dest"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want string // want "" = refused
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"::FFFF:7F00:1", "127.0.0.1"},
		{"[::ffff:7f00:1]", "127.0.0.1"},
		{"0:0:0:0:0:ffff:7f00:0001", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0X7F.0X1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0177.0000.0.01", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"10.0.65535", "10.0.255.255"},
		{"FD00::0001", "fd00::1"},
		{"fd00:0:0:0:0:0:0:1", "fd00::1"},
		{"fd00::0.0.0.1", "fd00::1"},
		{"::1", "::1"},
		{"Web1.Example.ORG.", "web1.example.org"},
		{"db_1.internal", "db_1.internal"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"4a.example.1a", "4a.example.1a"},

		{"", ""},
		{".", ""},
		{"fe80::1%eth0", ""},
		{"[fe80::1%25eth0]", ""},
		{"1.2.3.256", ""},
		{"08.1.1.1", ""},
		{"1.2.3.4.5", ""},
		{"1..2.3", ""},
		{"0x", ""},
		{"4294967296", ""},
		{"256.1", ""},
		{"0.0.0.0", ""},
		{"0", ""},
		{"0.1.2.3", ""},
		{"::", ""},
		{"::ffff:0.0.0.0", ""},
		{"224.0.0.1", ""},
		{"ff02::1", ""},
		{"255.255.255.255", ""},
		{"::127.0.0.1", ""},
		{"::7f00:1", ""},
		{"::ffff:127.000.0.1", ""},
		{"[127.0.0.1]", ""},
		{"[::1", ""},
		{"a b", ""},
		{"a\x00b", ""},
		{"-a.example", ""},
		{"a..example", ""},
		{"bücher.example", ""},
		{"a%b", ""},
		{"a/b", ""},
		{strings.Repeat("a", 64) + ".example", ""},
		{strings.Repeat("a.", 127) + "ab", ""},
		{strings.Repeat("a", 300), ""},
	}
	for _, tt := range tests {
		h, err := dest.ParseHost(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseHost(%q) = %q, want refused", tt.in, h)
			} else if !errors.Is(err, dest.ErrInvalid) {
				t.Errorf("ParseHost(%q): %v does not wrap ErrInvalid", tt.in, err)
			}
			continue
		}
		if err != nil || h.String() != tt.want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", tt.in, h, err, tt.want)
		}
	}
}

func TestParseAndPrefix(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"127.1:022", "127.0.0.1:22"},
		{"[::ffff:127.0.0.1]:2222", "127.0.0.1:2222"},
		{"[fd00::1]:22", "[fd00::1]:22"},
		{"DB1.internal.:5432", "db1.internal:5432"},
		{"db1:0", ""},
		{"db1:65536", ""},
		{"db1", ""},
		{"db1:ssh", ""},
	} {
		d, err := dest.Parse(tt.in)
		if got := d.String(); (tt.want == "") != (err != nil) || (err == nil && got != tt.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"::ffff:127.0.0.0/104", "127.0.0.0/8"},
		{"::ffff:10.1.2.3/128", "10.1.2.3/32"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"127.1", "127.0.0.1/32"},
		{"[fd00::1]", "fd00::1/128"},
		{"::/64", "::/64"},
		{"::ffff:0:0/96", "0.0.0.0/0"},
		{"::ffff:0:0/95", "::fffe:0:0/95"},
		{"fe80::/64%eth0", ""},
		{"db1", ""},
	} {
		p, err := dest.ParsePrefix(tt.in)
		if (tt.want == "") != (err != nil) || (err == nil && p.String() != tt.want) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %q", tt.in, p, err, tt.want)
		}
	}
}

// FuzzParseHost: whatever the input, a parsed host is canonical (parsing
// its text again gives the same host), an address is no mapped, zoned or
// unspecified one, and a name is lower-case ASCII without a trailing dot.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:7f00:1", "0x7f.1", "0177.0.0.1", "127.1", "2130706433", "Web1.Example.", "fe80::1%eth0", "[::1]", "1.2.3.256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := dest.ParseHost(s)
		if err != nil {
			if h.IsValid() {
				t.Fatalf("ParseHost(%q) failed but returned %q", s, h)
			}
			return
		}
		again, err := dest.ParseHost(h.String())
		if err != nil || again != h {
			t.Fatalf("ParseHost(%q) = %q, which parses to %q, %v", s, h, again, err)
		}
		if a, ok := h.Addr(); ok {
			if a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
				t.Fatalf("ParseHost(%q) = %v", s, a)
			}
			if c, err := dest.Canonical(a); err != nil || c != a {
				t.Fatalf("Canonical(%v) = %v, %v", a, c, err)
			}
			return
		}
		n := h.Name()
		if n == "" || strings.HasSuffix(n, ".") || strings.ToLower(n) != n || len(n) > 253 {
			t.Fatalf("ParseHost(%q) = name %q", s, n)
		}
		if _, err := netip.ParseAddr(n); err == nil {
			t.Fatalf("ParseHost(%q) = name %q, which is an address", s, n)
		}
	})
}
