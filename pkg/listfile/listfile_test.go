package listfile

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		opts     Options
		want     []netip.Prefix
		rejected []string // "line: reason prefix"
	}{
		{name: "empty", in: ""},
		{name: "comments and blanks", in: "# a\n; b\n\n   \n\t# c\n"},
		{name: "address and prefix", in: "192.0.2.1\n198.51.100.0/24\n2001:db8::1\n2001:db8:1::/48\n",
			want: prefixes("192.0.2.1/32", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:1::/48")},
		{name: "spamhaus trailing comment", in: "1.10.16.0/20 ; SBL256894\n", want: prefixes("1.10.16.0/20")},
		{name: "hash comment", in: "192.0.2.7 # ssh brute force\n", want: prefixes("192.0.2.7/32")},
		{name: "crlf and no final newline", in: "192.0.2.1\r\n192.0.2.2", want: prefixes("192.0.2.1/32", "192.0.2.2/32")},
		{name: "mapped address unmapped", in: "::ffff:192.0.2.1\n::ffff:192.0.2.0/120\n", want: prefixes("192.0.2.1/32", "192.0.2.0/24")},
		{name: "range", in: "192.0.2.0-192.0.2.2\n", want: prefixes("192.0.2.0/31", "192.0.2.2/32")},
		{name: "bad lines do not abort", in: "10.0.0/8\n192.0.2.1\nbogus\n192.0.2.2 extra\n",
			want:     prefixes("192.0.2.1/32"),
			rejected: []string{"1: invalid prefix", "3: invalid address", "4: unexpected text"}},
		{name: "host bits", in: "192.0.2.1/24\n", rejected: []string{"1: prefix has host bits set (did you mean 192.0.2.0/24?)"}},
		{name: "broad refused", in: "10.0.0.0/8\n0.0.0.0/0\n2001:db8::/32\n2000::/3\n",
			want: prefixes("10.0.0.0/8", "2001:db8::/32"), rejected: []string{"2: prefix /0 is broader than /8", "4: prefix /3 is broader than /32"}},
		{name: "broad allowed", in: "0.0.0.0/0\n", opts: Options{AllowBroad: true}, want: prefixes("0.0.0.0/0")},
		{name: "custom limit", in: "10.0.0.0/8\n10.0.0.0/16\n", opts: Options{MaxBits4: 16},
			want: prefixes("10.0.0.0/16"), rejected: []string{"1: prefix /8 is broader than /16"}},
		{name: "broad range refused", in: "0.0.0.0-255.255.255.255\n", rejected: []string{"1: range 0.0.0.0-255.255.255.255: prefix /0"}},
		{name: "reversed range", in: "192.0.2.9-192.0.2.1\n", rejected: []string{"1: invalid range"}},
		{name: "zone", in: "fe80::1%eth0\n", rejected: []string{"1: address has a zone"}},
		{name: "long line", in: strings.Repeat("1", 50) + "\n192.0.2.1\n", opts: Options{MaxLineBytes: 20},
			want: prefixes("192.0.2.1/32"), rejected: []string{"1: line longer than 20 bytes"}},
		{name: "very long line", in: strings.Repeat("1", 10000) + "\n192.0.2.1", opts: Options{MaxLineBytes: 20},
			want: prefixes("192.0.2.1/32"), rejected: []string{"1: line longer than 20 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tt.in), "list.txt", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Prefixes, tt.want) {
				t.Errorf("prefixes = %v, want %v", res.Prefixes, tt.want)
			}
			if len(res.Rejected) != len(tt.rejected) {
				t.Fatalf("rejected = %v, want %v", res.Rejected, tt.rejected)
			}
			for i, r := range res.Rejected {
				line, reason, _ := strings.Cut(tt.rejected[i], ": ")
				if got := r.Error(); !strings.HasPrefix(got, "list.txt:"+line+": "+reason) {
					t.Errorf("rejected[%d] = %q, want prefix %q", i, got, "list.txt:"+line+": "+reason)
				}
				if len(r.Text) > maxTextBytes {
					t.Errorf("rejected[%d].Text is %d bytes", i, len(r.Text))
				}
			}
		})
	}
}

func TestParseFeeds(t *testing.T) {
	for file, want := range map[string][]netip.Prefix{
		"testdata/drop.txt":       prefixes("1.10.16.0/20", "1.19.0.0/16", "2.56.192.0/22"),
		"testdata/firehol.netset": prefixes("0.0.0.0/8", "1.10.16.0/20", "5.188.10.179/32", "185.220.101.0/24"),
	} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Parse(f, file, Options{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Prefixes, want) {
			t.Errorf("%s: prefixes = %v, want %v", file, res.Prefixes, want)
		}
		if len(res.Rejected) != 0 {
			t.Errorf("%s: rejected %v", file, res.Rejected)
		}
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("192.0.2.1\n192.0.2.2\n"), iotest.ErrReader(boom))
	res, err := Parse(r, "x", Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if !strings.HasPrefix(err.Error(), "x: line 3: ") {
		t.Errorf("error %q does not name the file and line", err)
	}
	if len(res.Prefixes) != 2 {
		t.Errorf("prefixes read before the error = %v", res.Prefixes)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1\n", "1.10.16.0/20 ; SBL256894\n", "# c\n\n2001:db8::/48\n",
		"192.0.2.0-192.0.2.9\n", "::ffff:1.2.3.4/120\r\n", "0.0.0.0/0\n", "fe80::1%eth0\n",
		"1.2.3.4 5.6.7.8\n", "\xff\xfe\n",
	} {
		f.Add(s, 0, false)
	}
	f.Fuzz(func(t *testing.T, in string, maxLine int, broad bool) {
		opts := Options{MaxLineBytes: maxLine % 200, AllowBroad: broad}
		res, err := Parse(strings.NewReader(in), "f", opts)
		if err != nil {
			t.Fatalf("Parse of an in-memory string failed: %v", err)
		}
		lines := strings.Count(in, "\n")
		if !strings.HasSuffix(in, "\n") && in != "" {
			lines++
		}
		if res.Lines != lines {
			t.Errorf("Lines = %d, want %d", res.Lines, lines)
		}
		for _, p := range res.Prefixes {
			if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				t.Errorf("bad prefix %v", p)
			}
			if !broad && ((p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 32)) {
				t.Errorf("broad prefix %v accepted", p)
			}
		}
		for _, r := range res.Rejected {
			if r.Line < 1 || r.Line > res.Lines || len(r.Text) > maxTextBytes || !utf8.ValidString(r.Text) {
				t.Errorf("bad rejection %+v", r)
			}
		}
	})
}

func FuzzFastAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "1.2.3", "01.2.3.4", "256.1.1.1", "1.2.3.4.5", "0.0.0.0", "1..2.3", "1234.1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := fastAddr([]byte(s))
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is4()
		if ok && (!want || p != netip.PrefixFrom(a, 32)) {
			t.Fatalf("fastAddr(%q) = %v, netip says %v %v", s, p, a, err)
		}
		if !ok && want && !strings.ContainsAny(s, "%:") {
			// The general path handles it; fastAddr may decline, but a
			// plain dotted quad should not be declined.
			t.Fatalf("fastAddr(%q) declined a plain address", s)
		}
	})
}

func TestScan(t *testing.T) {
	var got []netip.Prefix
	res, err := Scan(strings.NewReader("192.0.2.1\nbad\n2001:db8::/32\n"), "s", Options{}, func(p netip.Prefix) { got = append(got, p) })
	if err != nil || len(res.Prefixes) != 0 || len(res.Rejected) != 1 || len(got) != 2 {
		t.Fatalf("Scan: %v, %+v, %v", err, res, got)
	}
}

func TestMaxRejected(t *testing.T) {
	res, err := Parse(strings.NewReader(strings.Repeat("junk\n", 50)+"192.0.2.1\n"), "j", Options{MaxRejected: 3})
	if err != nil || len(res.Rejected) != 3 || res.RejectedCount != 50 || len(res.Prefixes) != 1 {
		t.Fatalf("%v: kept %d of %d rejections, %d prefixes", err, len(res.Rejected), res.RejectedCount, len(res.Prefixes))
	}
}
