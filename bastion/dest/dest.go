// Package dest turns what an SSH client names as a destination into one
// canonical value, so that the bastion's every decision about it (named
// target, record-only target, allow rule, self-jump, audit record, dial)
// is about the same thing.
//
// # Why
//
// The same host can be spelled many ways: 127.0.0.1, ::ffff:127.0.0.1,
// ::ffff:7f00:1, 2130706433, 0x7f.1, 0177.0.0.1, 127.1, and a name as
// DB1.Example.ORG. or db1.example.org. Comparing raw text lets a
// spelling that one check does not recognise pass where another check
// (or the kernel, or glibc's resolver) sees the same host.
//
// # The canonical form
//
//   - IPv6 literals are parsed by [net/netip] (compressions, upper-case hex
//     and leading zeros in groups are all the same address), with or without
//     one pair of brackets; IPv4-mapped addresses (::ffff:a.b.c.d) become
//     the IPv4 address.
//   - IPv4 is normalized the way inet_aton(3) (and so glibc's getaddrinfo,
//     and browsers) read it: one to four parts, each decimal, octal with a
//     leading 0, or hex with 0x; the last part fills the remaining bytes.
//     2130706433, 0x7f.1, 0177.0.0.1 and 127.1 are all 127.0.0.1. A host
//     whose last label is numeric but that is not such an address
//     (1.2.3.256, 08.1.1.1, 1.2.3.4.5) is refused: a resolver might read it
//     either way.
//   - Zones (fe80::1%eth0) are refused: a destination names a host, not an
//     interface of the bastion.
//   - Addresses that are no destination are refused: unspecified (0.0.0.0/8,
//     ::, which the kernel treats as this host), multicast, the limited
//     broadcast address and IPv4-compatible IPv6 (::a.b.c.d, deprecated).
//   - Names are lower-cased ASCII without the trailing dot, made of labels
//     of 1 to 63 letters, digits, '-' and '_' (not starting with '-'), at
//     most 253 bytes. Anything else (spaces, control bytes, '%', non-ASCII)
//     is refused; internationalized names are written in their xn-- form.
package dest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every refusal of a spelling.
var ErrInvalid = errors.New("invalid destination")

// MaxHostLen bounds the host text looked at; longer text is refused
// without being parsed.
const MaxHostLen = 255

// Host is a canonical host: an address or a name, never both. The zero
// Host is invalid.
type Host struct {
	addr netip.Addr
	name string
}

// AddrHost is the Host of an address already canonical (see [Canonical]).
func AddrHost(a netip.Addr) Host { return Host{addr: a} }

// Addr returns the address, and false for a name.
func (h Host) Addr() (netip.Addr, bool) { return h.addr, h.addr.IsValid() }

// Name returns the name, or "" for an address.
func (h Host) Name() string { return h.name }

// IsValid reports whether h came from a successful parse.
func (h Host) IsValid() bool { return h.addr.IsValid() || h.name != "" }

// String is the canonical text: the address as [netip.Addr.String] writes
// it, or the name.
func (h Host) String() string {
	if h.addr.IsValid() {
		return h.addr.String()
	}
	return h.name
}

// Dest is a canonical host and a port.
type Dest struct {
	Host Host
	Port uint16
}

// String is host:port, with brackets around IPv6 addresses.
func (d Dest) String() string {
	return net.JoinHostPort(d.Host.String(), strconv.Itoa(int(d.Port)))
}

// AddrPort returns the address and port, and false for a name.
func (d Dest) AddrPort() (netip.AddrPort, bool) {
	a, ok := d.Host.Addr()
	return netip.AddrPortFrom(a, d.Port), ok
}

// ParseHost parses one spelling of a host into its canonical form.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, fmt.Errorf("%w: empty host", ErrInvalid)
	}
	if len(s) > MaxHostLen {
		return Host{}, fmt.Errorf("%w: host of %d bytes (at most %d)", ErrInvalid, len(s), MaxHostLen)
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || !strings.Contains(inner, ":") {
			return Host{}, fmt.Errorf("%w: %q: brackets hold an IPv6 address", ErrInvalid, s)
		}
		s = inner
	}
	if strings.Contains(s, ":") {
		if strings.Contains(s, "%") {
			return Host{}, fmt.Errorf("%w: %q: zones are not allowed", ErrInvalid, s)
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Host{}, fmt.Errorf("%w: %q: not an IPv6 address", ErrInvalid, s)
		}
		return addrHost(a)
	}
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return Host{}, fmt.Errorf("%w: %q: empty name", ErrInvalid, s)
	}
	labels := strings.Split(name, ".")
	if numericLabel(labels[len(labels)-1]) {
		a, ok := parseIPv4(labels)
		if !ok {
			return Host{}, fmt.Errorf("%w: %q: numeric, but not an IPv4 address", ErrInvalid, s)
		}
		return addrHost(a)
	}
	if len(name) > 253 {
		return Host{}, fmt.Errorf("%w: name of %d bytes (at most 253)", ErrInvalid, len(name))
	}
	var b strings.Builder
	b.Grow(len(name))
	for i, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' {
			return Host{}, fmt.Errorf("%w: %q: label %d is empty, longer than 63 bytes or starts with '-'", ErrInvalid, s, i+1)
		}
		if i > 0 {
			b.WriteByte('.')
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return Host{}, fmt.Errorf("%w: %q: byte %q is not allowed in a host name", ErrInvalid, s, c)
			}
			b.WriteByte(c)
		}
	}
	return Host{name: b.String()}, nil
}

// Parse parses host:port (config files: a target's addr). The port is
// decimal, 1 to 65535.
func Parse(hostport string) (Dest, error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return Dest{}, fmt.Errorf("%w: %q: want host:port", ErrInvalid, hostport)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return Dest{}, fmt.Errorf("%w: %q: port %q is not 1..65535", ErrInvalid, hostport, ps)
	}
	h, err := ParseHost(host)
	if err != nil {
		return Dest{}, err
	}
	return Dest{Host: h, Port: uint16(p)}, nil
}

// ParsePrefix parses an address range for allow rules: a CIDR, or one
// address (any spelling [ParseHost] takes) as a single-address range. An
// IPv4-mapped range (::ffff:10.0.0.0/104) becomes the IPv4 range, so it
// matches the canonical addresses [ParseHost] returns. A zone is refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		h, err := ParseHost(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a, ok := h.Addr()
		if !ok {
			return netip.Prefix{}, fmt.Errorf("%w: %q is a name, not an address", ErrInvalid, s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%w: %q: zones are not allowed", ErrInvalid, s)
	}
	host, bits, _ := strings.Cut(s, "/")
	if !strings.Contains(host, ":") {
		// IPv4 in any of inet_aton's spellings, as for a destination.
		h, err := ParseHost(host)
		a, ok := h.Addr()
		if err != nil || !ok || !a.Is4() {
			if err == nil {
				err = fmt.Errorf("%w: %q: not an IPv4 address", ErrInvalid, host)
			}
			if ip, perr := netip.ParseAddr(host); perr == nil && ip.Is4() {
				a, err = ip, nil // 0.0.0.0/0 and the like: a range, not a destination
			} else {
				return netip.Prefix{}, err
			}
		}
		host = a.String()
	}
	p, err := netip.ParsePrefix(host + "/" + bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	p = p.Masked()
	// A wider IPv6 range (::/0) keeps its meaning: no canonical address is
	// mapped, so it covers IPv6 addresses only.
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// Canonical returns the canonical form of an address (from DNS or a
// socket), or an error when it is no destination (see the package doc).
func Canonical(a netip.Addr) (netip.Addr, error) {
	h, err := addrHost(a)
	return h.addr, err
}

func addrHost(a netip.Addr) (Host, error) {
	if a.Zone() != "" {
		return Host{}, fmt.Errorf("%w: %s: zones are not allowed", ErrInvalid, a)
	}
	a = a.Unmap()
	switch {
	case a.Is4() && a.As4()[0] == 0, a.IsUnspecified():
		return Host{}, fmt.Errorf("%w: %s is unspecified (this host)", ErrInvalid, a)
	case a.IsMulticast():
		return Host{}, fmt.Errorf("%w: %s is multicast", ErrInvalid, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return Host{}, fmt.Errorf("%w: %s is the broadcast address", ErrInvalid, a)
	case a.Is6() && ipv4Compatible.Contains(a) && a != netip.IPv6Loopback():
		return Host{}, fmt.Errorf("%w: %s is an IPv4-compatible IPv6 address (deprecated)", ErrInvalid, a)
	}
	return Host{addr: a}, nil
}

var ipv4Compatible = netip.MustParsePrefix("::/96")

// numericLabel reports whether a host's last label makes it an IPv4
// attempt, as the URL standard's "ends in a number" does: all decimal
// digits, or 0x followed by hex digits.
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(l), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// parseIPv4 reads parts as inet_aton(3) does.
func parseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
		p, base = p[2:], 16
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	if p == "" || len(p) > 32 {
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}
