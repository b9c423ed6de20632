package bastion_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
)

// spell writes host (canonical: an address as netip writes it, or a
// lower-case name) the way a client or an administrator might: every
// spelling it returns means the same host to the bastion's parser and to
// glibc's resolver.
func spell(r *rand.Rand, host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return spellName(r, host)
	}
	if a.Is4() {
		if r.IntN(3) == 0 {
			return spellMapped(r, a)
		}
		return spellIPv4(r, a)
	}
	s := spellIPv6(r, a.As16(), false)
	if r.IntN(4) == 0 {
		s = "[" + s + "]"
	}
	return s
}

func spellName(r *rand.Rand, name string) string {
	b := []byte(name)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	if r.IntN(3) == 0 {
		b = append(b, '.')
	}
	return string(b)
}

// spellIPv4 uses inet_aton's forms: 1 to 4 parts, each decimal, octal or
// hex, and maybe a trailing dot.
func spellIPv4(r *rand.Rand, a netip.Addr) string {
	b := a.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	var parts []uint64
	switch r.IntN(4) {
	case 0:
		parts = []uint64{v}
	case 1:
		parts = []uint64{v >> 24, v & 0xffffff}
	case 2:
		parts = []uint64{v >> 24, (v >> 16) & 0xff, v & 0xffff}
	default:
		parts = []uint64{v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff}
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = spellNumber(r, p)
	}
	s := strings.Join(out, ".")
	if r.IntN(5) == 0 {
		s += "."
	}
	return s
}

func spellNumber(r *rand.Rand, n uint64) string {
	zeros := strings.Repeat("0", r.IntN(3))
	switch r.IntN(3) {
	case 0:
		return strconv.FormatUint(n, 10)
	case 1:
		return "0" + zeros + strconv.FormatUint(n, 8)
	default:
		x := strconv.FormatUint(n, 16)
		if r.IntN(2) == 0 {
			x = strings.ToUpper(x)
		}
		return []string{"0x", "0X"}[r.IntN(2)] + zeros + x
	}
}

// spellMapped writes a as an IPv4-mapped IPv6 address.
func spellMapped(r *rand.Rand, a netip.Addr) string {
	s := spellIPv6(r, netip.AddrFrom16(a.As16()).As16(), r.IntN(2) == 0)
	if r.IntN(3) == 0 {
		s = "[" + s + "]"
	}
	return s
}

// spellIPv6 writes 16 bytes as eight groups with random leading zeros and
// case, one random run of zero groups compressed (or none), and maybe the
// last 32 bits as dotted decimal.
func spellIPv6(r *rand.Rand, b [16]byte, dotted bool) string {
	n := 8
	if dotted {
		n = 6
	}
	groups := make([]string, n)
	zero := make([]bool, n)
	for i := range n {
		g := uint16(b[2*i])<<8 | uint16(b[2*i+1])
		zero[i] = g == 0
		s := strconv.FormatUint(uint64(g), 16)
		if pad := r.IntN(5 - len(s)); pad > 0 {
			s = strings.Repeat("0", pad) + s
		}
		if r.IntN(2) == 0 {
			s = strings.ToUpper(s)
		}
		groups[i] = s
	}
	tail := ""
	if dotted {
		tail = fmt.Sprintf("%d.%d.%d.%d", b[12], b[13], b[14], b[15])
	}
	// Runs of zero groups that may be written "::".
	type run struct{ from, to int }
	var runs []run
	for i := 0; i < n; i++ {
		if !zero[i] {
			continue
		}
		for j := i + 1; j <= n; j++ {
			if j == n || !zero[j] {
				for k := i; k < j; k++ {
					for l := k + 1; l <= j; l++ {
						runs = append(runs, run{k, l})
					}
				}
				i = j
				break
			}
		}
	}
	join := func(gs []string) string { return strings.Join(gs, ":") }
	if len(runs) == 0 || r.IntN(4) == 0 {
		s := join(groups)
		if dotted {
			s += ":" + tail
		}
		return s
	}
	c := runs[r.IntN(len(runs))]
	head, rest := join(groups[:c.from]), groups[c.to:]
	s := head + "::" + join(rest)
	if dotted {
		if len(rest) > 0 {
			s += ":"
		}
		s += tail
	}
	return s
}
