package firewall

import (
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"slices"

	"go4.org/netipx"
)

// Default prefix-width limits: a blocklist entry broader than these is
// refused unless the policy allows broad prefixes.
const (
	DefaultMaxBits4 = 8
	DefaultMaxBits6 = 32
)

// AlwaysAllowed returns the prefixes no policy ever blocks: loopback and
// link-local, whose loss cuts a host off from itself and its neighbours.
func AlwaysAllowed() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
	}
}

// Policy is the safety net between a blocklist and a [Backend]: what can
// never be blocked, and how broad an entry may be. Every backend receives
// sets built by [Policy.Build], so an operator cannot lock themselves out
// whatever a feed or a report says.
type Policy struct {
	// Allow are management prefixes never blocked (the bastion, the
	// monitoring host), on top of AlwaysAllowed and the host's addresses.
	Allow []netip.Prefix
	// AllowBroad accepts entries broader than MaxBits4 / MaxBits6.
	AllowBroad bool
	// MaxBits4 is the broadest IPv4 entry accepted, as a prefix length
	// (8: a /8 is accepted, a /7 refused); 0 means DefaultMaxBits4.
	MaxBits4 int
	// MaxBits6 is the same for IPv6; 0 means DefaultMaxBits6.
	MaxBits6 int
	// HostAddrs returns this host's own addresses, which are never
	// blocked. Nil means the addresses of every local interface. An error
	// makes Build fail: without them the allowlist is incomplete.
	HostAddrs func() ([]netip.Addr, error)
}

// Stats describes what [Policy.Build] did to its input.
type Stats struct {
	Input       int // entries given
	Refused     int // invalid, or broader than the limit
	Allowlisted int // entries overlapping the allowlist (trimmed or dropped)
	Addresses   int // single addresses (/32, /128) in the result, as CIDR prefixes cover it
	Prefixes    int // wider prefixes in that cover
	Ranges      int // contiguous ranges in the result
}

// Allowlist returns every address the policy protects: AlwaysAllowed,
// the configured Allow prefixes and the host's own addresses.
func (p Policy) Allowlist() (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	for _, a := range AlwaysAllowed() {
		b.AddPrefix(a)
	}
	for _, a := range p.Allow {
		if !a.IsValid() {
			return nil, fmt.Errorf("firewall: allowlist entry %q is not a valid prefix", a)
		}
		b.AddPrefix(a.Masked())
	}
	hostAddrs := p.HostAddrs
	if hostAddrs == nil {
		hostAddrs = InterfaceAddrs
	}
	addrs, err := hostAddrs()
	if err != nil {
		return nil, fmt.Errorf("firewall: list this host's addresses for the allowlist: %w", err)
	}
	for _, a := range addrs {
		b.Add(a.Unmap().WithZone(""))
	}
	return b.IPSet()
}

// InterfaceAddrs returns the addresses of every local interface.
func InterfaceAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, ia := range ifaddrs {
		ipn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		if a, ok := netip.AddrFromSlice(ipn.IP); ok {
			addrs = append(addrs, a.Unmap())
		}
	}
	return addrs, nil
}

// ErrBroad reports an entry broader than the policy accepts.
var ErrBroad = errors.New("broader than the policy accepts")

// Check reports whether a single entry may be blocked at all: valid, not
// zoned, and no broader than the limits. It does not consult the allowlist.
func (p Policy) Check(pfx netip.Prefix) error {
	if !pfx.IsValid() {
		return fmt.Errorf("invalid prefix %q", pfx)
	}
	if pfx.Addr().Zone() != "" {
		return fmt.Errorf("prefix %s has a zone", pfx)
	}
	if p.AllowBroad {
		return nil
	}
	limit := p.MaxBits6
	if limit <= 0 {
		limit = DefaultMaxBits6
	}
	if pfx.Addr().Is4() {
		limit = p.MaxBits4
		if limit <= 0 {
			limit = DefaultMaxBits4
		}
	}
	if pfx.Bits() < limit {
		return fmt.Errorf("%s: /%d is %w (limit /%d)", pfx, pfx.Bits(), ErrBroad, limit)
	}
	return nil
}

// Build turns blocklist entries into the set a backend enforces:
// refused entries dropped, overlaps and neighbours merged, the allowlist
// subtracted. It fails only when the allowlist itself cannot be built,
// so a bad entry never stops the others from being enforced.
func (p Policy) Build(prefixes []netip.Prefix) (*netipx.IPSet, Stats, error) {
	s, st, err := p.BuildSet(slices.Values(prefixes))
	if err != nil {
		return nil, st, err
	}
	return s.IPSet(), st, nil
}

// BuildSet is Build for large loads: it consumes entries as they come
// (from a parser, say) and returns the compact [Set].
func (p Policy) BuildSet(entries iter.Seq[netip.Prefix]) (*Set, Stats, error) {
	var st Stats
	allow, err := p.Allowlist()
	if err != nil {
		return nil, st, err
	}
	var b setBuilder
	for pfx := range entries {
		st.Input++
		pfx = unmap(pfx)
		if p.Check(pfx) != nil {
			st.Refused++
			continue
		}
		pfx = pfx.Masked()
		if allow.OverlapsPrefix(pfx) {
			st.Allowlisted++
		}
		b.addPrefix(pfx)
	}
	s := b.set()
	s.subtract(allow)
	st.countSet(s)
	return s, st, nil
}

// BuildDelta applies the policy to a change: refused entries and the
// allowlist are taken out of the additions. Removals pass through (taking
// an entry away never blocks anyone), except invalid ones. Applied to a
// set built by [Policy.Build], the result is the set Build gives for the
// entries after the change, provided d follows the [Delta] contract (every
// remaining entry that overlaps a removal is among the additions).
func (p Policy) BuildDelta(d Delta) (Delta, Stats, error) {
	set, st, err := p.Build(d.Add)
	if err != nil {
		return Delta{}, st, err
	}
	out := Delta{Add: set.Prefixes()}
	for _, r := range d.Remove {
		if r.IsValid() && r.Addr().Zone() == "" {
			out.Remove = append(out.Remove, unmap(r).Masked())
		}
	}
	return out, st, nil
}

// unmap turns an IPv4-mapped IPv6 prefix into the IPv4 prefix it means.
func unmap(p netip.Prefix) netip.Prefix {
	if p.IsValid() && p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}
