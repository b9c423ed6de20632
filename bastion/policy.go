package bastion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/dest"
)

// Target is a named host from the config, ready to use.
type Target struct {
	Name     string
	Addr     string // host:port, canonical (see bastion/dest)
	User     string // remote login; "" means the bastion user's name
	Modes    []string
	HostKeys []gossh.PublicKey
	HostCA   gossh.PublicKey
	dest     dest.Dest
	// Description is the menu's short text for the target.
	Description string
}

// Allows reports whether the target may be used in mode.
func (t *Target) Allows(mode string) bool { return slices.Contains(t.Modes, mode) }

// User is a configured person, ready to use.
type User struct {
	Name         string
	Keys         []gossh.PublicKey
	Principals   []string
	SecondFactor string
	DuoUsername  string
	rules        []allowRule
}

// Policy answers "who is this key" and "may this user go there". It is
// immutable once built.
type Policy struct {
	users    map[string]*User
	targets  map[string]*Target // by lower-cased name
	order    []*Target
	userCAs  []gossh.PublicKey
	resolver Resolver
	self     *Self
}

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// PolicyOptions are NewPolicyWith's dependencies; zero values are the
// real ones.
type PolicyOptions struct {
	// Resolver replaces net.DefaultResolver.
	Resolver Resolver
	// Self is where the bastion listens; the config's listen and
	// metrics_listen are added to it. nil: a Self of its own with the
	// host's interface addresses.
	Self *Self
}

// ErrNotAllowed is wrapped by every refusal of a destination.
var ErrNotAllowed = errors.New("destination not allowed")

// NewPolicy compiles a validated Config.
func NewPolicy(c *Config) (*Policy, error) { return NewPolicyWith(c, PolicyOptions{}) }

// NewPolicyWith is NewPolicy with its dependencies given.
func NewPolicyWith(c *Config, o PolicyOptions) (*Policy, error) {
	p := &Policy{users: map[string]*User{}, targets: map[string]*Target{}, resolver: o.Resolver, self: o.Self}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if p.self == nil {
		p.self = NewSelf(nil)
	}
	for _, l := range []struct{ key, addr string }{{"listen", c.Listen}, {"metrics_listen", c.MetricsListen}} {
		if l.addr == "" {
			continue
		}
		if err := p.self.Add(l.addr); err != nil {
			return nil, fmt.Errorf("%s: %w", l.key, err)
		}
	}
	for _, s := range c.TrustedUserCAKeys {
		k, err := ParseAuthorizedKey(s)
		if err != nil {
			return nil, err
		}
		p.userCAs = append(p.userCAs, k)
	}
	names := map[string]bool{}
	for _, tc := range c.Targets {
		d, err := dest.Parse(tc.Addr)
		if err != nil {
			return nil, fmt.Errorf("target %s: addr: %w", tc.Name, err)
		}
		t := &Target{Name: tc.Name, Addr: d.String(), User: tc.User, Modes: tc.Modes, dest: d, Description: tc.Description}
		for _, s := range tc.HostKeys {
			k, err := ParseAuthorizedKey(s)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", tc.Name, err)
			}
			t.HostKeys = append(t.HostKeys, k)
		}
		if tc.HostCA != "" {
			k, err := ParseAuthorizedKey(tc.HostCA)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", tc.Name, err)
			}
			t.HostCA = k
		}
		if other := p.targets[strings.ToLower(t.Name)]; other != nil {
			return nil, fmt.Errorf("targets %s and %s differ only in case", other.Name, t.Name)
		}
		p.targets[strings.ToLower(t.Name)] = t
		p.order = append(p.order, t)
		names[t.Name] = true
	}
	for name, uc := range c.Users {
		u := &User{Name: name, Principals: uc.Principals, SecondFactor: uc.SecondFactor, DuoUsername: uc.DuoUsername}
		if len(u.Principals) == 0 {
			u.Principals = []string{name}
		}
		if u.DuoUsername == "" {
			u.DuoUsername = name
		}
		for _, s := range uc.Keys {
			k, err := ParseAuthorizedKey(s)
			if err != nil {
				return nil, fmt.Errorf("user %s: %w", name, err)
			}
			u.Keys = append(u.Keys, k)
		}
		specs := slices.Clone(uc.Targets)
		for _, g := range uc.Groups {
			specs = append(specs, c.Groups[g].Targets...)
		}
		for _, s := range specs {
			r, err := parseAllow(s, names)
			if err != nil {
				return nil, fmt.Errorf("user %s: %w", name, err)
			}
			u.rules = append(u.rules, r)
		}
		p.users[name] = u
	}
	return p, nil
}

// User returns the named user, or nil.
func (p *Policy) User(name string) *User { return p.users[name] }

// UserNames lists the configured users.
func (p *Policy) UserNames() []string {
	var out []string
	for n := range p.users {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Target returns the named target (names are not case-sensitive), or nil.
func (p *Policy) Target(name string) *Target { return p.targets[strings.ToLower(name)] }

// withSelf is p listening where s says (a server's own listeners).
func (p *Policy) withSelf(s *Self) *Policy {
	s.addPorts(p.self)
	cp := *p
	cp.self = s
	return &cp
}

// CheckKey decides whether key (a plain key or a user certificate) may log
// in as user from remote. It returns the method name for the audit log.
func (p *Policy) CheckKey(user string, key gossh.PublicKey, remote netip.Addr) (string, error) {
	u := p.users[user]
	if u == nil {
		return "publickey", errors.New("unknown user")
	}
	if cert, ok := key.(*gossh.Certificate); ok {
		return "certificate", p.checkCert(u, cert, remote)
	}
	if err := CheckKeyType(key); err != nil {
		return "publickey", err
	}
	for _, k := range u.Keys {
		if keysEqual(k, key) {
			return "publickey", nil
		}
	}
	return "publickey", errors.New("key not listed for this user")
}

func (p *Policy) checkCert(u *User, cert *gossh.Certificate, remote netip.Addr) error {
	if cert.CertType != gossh.UserCert {
		return errors.New("certificate: not a user certificate")
	}
	if err := CheckKeyType(cert.Key); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	checker := gossh.CertChecker{
		SupportedCriticalOptions: []string{"source-address"},
		IsUserAuthority: func(auth gossh.PublicKey) bool {
			return slices.ContainsFunc(p.userCAs, func(k gossh.PublicKey) bool { return keysEqual(k, auth) })
		},
	}
	if !checker.IsUserAuthority(cert.SignatureKey) {
		return errors.New("certificate: signed by an untrusted CA")
	}
	// x/crypto's CertChecker accepts a certificate without principals for
	// any user; sshd refuses it, and so does the bastion.
	if len(cert.ValidPrincipals) == 0 {
		return errors.New("certificate: no principals (it must name the user)")
	}
	var lastErr error
	for _, principal := range u.Principals {
		if lastErr = checker.CheckCert(principal, cert); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return fmt.Errorf("certificate: %w", lastErr)
	}
	if sa, ok := cert.CriticalOptions["source-address"]; ok {
		if !sourceAllowed(sa, remote) {
			return fmt.Errorf("certificate: source %s not in source-address %q", remote, sa)
		}
	}
	return nil
}

func sourceAllowed(list string, remote netip.Addr) bool {
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if pr, err := netip.ParsePrefix(s); err == nil && pr.Contains(remote.Unmap()) {
			return true
		}
		if a, err := netip.ParseAddr(s); err == nil && a == remote.Unmap() {
			return true
		}
	}
	return false
}

// Allowed lists the named targets user may reach, in config order.
func (p *Policy) Allowed(user string) []*Target {
	u := p.users[user]
	if u == nil {
		return nil
	}
	var out []*Target
	for _, t := range p.order {
		if p.targetAllowed(u, t) {
			out = append(out, t)
		}
	}
	return out
}

func (p *Policy) targetAllowed(u *User, t *Target) bool {
	for _, r := range u.rules {
		if r.name == t.Name {
			return true
		}
		if r.name == "" && r.portOK(t.dest.Port) && r.matchHost(t.dest.Host) {
			return true
		}
	}
	return false
}

// matchHost matches a canonical host without DNS: a CIDR matches
// addresses, a glob matches the canonical text (a name, or an address as
// [netip.Addr.String] writes it).
func (r allowRule) matchHost(h dest.Host) bool {
	if a, ok := h.Addr(); ok && r.prefix.IsValid() {
		return r.prefix.Contains(a)
	}
	if r.glob != "" {
		ok, _ := path.Match(r.glob, h.String())
		return ok
	}
	return false
}

// Route is where a jump goes once allowed.
type Route struct {
	Dial   string    // address:port to connect to, canonical, already checked
	Dest   dest.Dest // the destination asked for, canonical (a named target's address)
	Target *Target   // the named target, if the destination is one
}

// Name is what the audit log calls the destination: the named target, or
// the canonical host:port; "" when the destination could not be parsed.
func (r Route) Name() string {
	if r.Target != nil {
		return r.Target.Name
	}
	if r.Dest.Host.IsValid() {
		return r.Dest.String()
	}
	return ""
}

// Resolve decides whether user may open a direct-tcpip channel to
// host:port and where to connect. host is parsed once into its canonical
// form ([dest.ParseHost]: mapped, numeric and upper-case spellings of one
// host are the same host, zones and ambiguous numbers are refused), and
// every check below and the address dialled use that one value.
//
// A target name ("ssh -J bastion web1") goes to that target's address
// when the port asked for is the target's port or 22; an address that is
// a named target's address is that target (a record-only target is never
// reached by jump, whatever the rules say). Otherwise an allow rule must
// match: a CIDR matches address literals only; a host name is looked up
// in DNS only when a host-name rule matches it, and the bastion then
// connects to the address it checked, so a DNS answer cannot change
// between check and use. The bastion's own listeners, on any address of
// its host, are refused last, whatever allowed the destination.
//
// The returned Route carries the canonical destination (and its named
// target) even when the jump is refused, for the audit record.
func (p *Policy) Resolve(ctx context.Context, user, host string, port uint16) (Route, error) {
	u := p.users[user]
	if u == nil {
		return Route{}, fmt.Errorf("%w: unknown user", ErrNotAllowed)
	}
	if len(host) <= dest.MaxHostLen {
		if t := p.targets[strings.ToLower(strings.TrimSuffix(host, "."))]; t != nil {
			rt := Route{Dest: t.dest, Target: t}
			if t.dest.Port != port && port != 22 {
				return rt, fmt.Errorf("%w: target %s listens on port %d", ErrNotAllowed, t.Name, t.dest.Port)
			}
			if !p.targetAllowed(u, t) {
				return rt, fmt.Errorf("%w: %s is not in %s's targets", ErrNotAllowed, t.Name, user)
			}
			if !t.Allows(ModeJump) {
				return rt, fmt.Errorf("%w: %s allows recorded sessions only", ErrNotAllowed, t.Name)
			}
			return p.finish(ctx, rt, false)
		}
	}
	h, err := dest.ParseHost(host)
	if err != nil {
		return Route{}, fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	rt := Route{Dest: dest.Dest{Host: h, Port: port}}
	if t := p.targetAt(rt.Dest); t != nil {
		rt.Target = t
		if !t.Allows(ModeJump) {
			return rt, fmt.Errorf("%w: %s is %s, which allows recorded sessions only", ErrNotAllowed, rt.Dest, t.Name)
		}
		if p.targetAllowed(u, t) {
			return p.finish(ctx, rt, false)
		}
	}
	matched := false
	for _, r := range u.rules {
		if r.name == "" && r.portOK(port) && r.matchHost(h) {
			matched = true
			break
		}
	}
	if !matched {
		return rt, fmt.Errorf("%w: %s is not in %s's targets", ErrNotAllowed, rt.Dest, user)
	}
	return p.finish(ctx, rt, true)
}

// finish turns an allowed destination into the address to dial: a name
// is resolved here, once, and every address it has must pass the checks;
// byRule also refuses addresses of record-only targets.
func (p *Policy) finish(ctx context.Context, rt Route, byRule bool) (Route, error) {
	addrs, err := p.lookup(ctx, rt.Dest.Host)
	if err != nil {
		return rt, err
	}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, rt.Dest.Port)
		if self, err := p.self.Is(ap); self {
			why := "an address of this bastion's host on a port it listens on"
			if err != nil {
				why = "maybe this bastion: " + err.Error()
			}
			return rt, fmt.Errorf("%w: %s is %s", ErrNotAllowed, ap, why)
		}
		if !byRule {
			continue
		}
		t, err := p.recordOnlyAt(ctx, ap)
		if err != nil {
			return rt, err
		}
		if t != nil {
			if rt.Target == nil {
				rt.Target = t
			}
			return rt, fmt.Errorf("%w: %s is %s, which allows recorded sessions only", ErrNotAllowed, ap, t.Name)
		}
	}
	rt.Dial = netip.AddrPortFrom(addrs[0], rt.Dest.Port).String()
	return rt, nil
}

// notSelf refuses a named target that is the bastion itself (a recorded
// session there would be a second login hiding the real destination).
func (p *Policy) notSelf(ctx context.Context, t *Target) error {
	addrs, err := p.lookup(ctx, t.dest.Host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if self, err := p.self.Is(netip.AddrPortFrom(a, t.dest.Port)); self {
			if err != nil {
				return fmt.Errorf("%w: target %s may be this bastion: %v", ErrNotAllowed, t.Name, err)
			}
			return fmt.Errorf("%w: target %s (%s) is this bastion", ErrNotAllowed, t.Name, t.Addr)
		}
	}
	return nil
}

// lookup returns the canonical addresses of h: h's own, or the DNS
// answer for a name.
func (p *Policy) lookup(ctx context.Context, h dest.Host) ([]netip.Addr, error) {
	if a, ok := h.Addr(); ok {
		return []netip.Addr{a}, nil
	}
	found, err := p.resolver.LookupNetIP(ctx, "ip", h.Name())
	if err != nil {
		return nil, fmt.Errorf("%w: resolve %s: %v", ErrNotAllowed, h, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: resolve %s: no addresses", ErrNotAllowed, h)
	}
	out := make([]netip.Addr, 0, len(found))
	for _, a := range found {
		c, err := dest.Canonical(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %s resolves to %v", ErrNotAllowed, h, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// targetAt returns the named target at d (a record-only one first, so
// that two targets on one address cannot open a jump to the recorded
// one), or nil.
func (p *Policy) targetAt(d dest.Dest) *Target {
	var found *Target
	for _, t := range p.order {
		if t.dest == d {
			if !t.Allows(ModeJump) {
				return t
			}
			if found == nil {
				found = t
			}
		}
	}
	return found
}

// recordOnlyAt returns the record-only target listening at ap: a rule
// must not open a jump to a host whose named target insists on
// recording. A record-only target configured by host name is looked up;
// when that fails the jump is refused, since it cannot be told apart.
func (p *Policy) recordOnlyAt(ctx context.Context, ap netip.AddrPort) (*Target, error) {
	for _, t := range p.order {
		if t.Allows(ModeJump) || t.dest.Port != ap.Port() {
			continue
		}
		addrs, err := p.lookup(ctx, t.dest.Host)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot tell %s from record-only target %s: %v", ErrNotAllowed, ap, t.Name, err)
		}
		if slices.Contains(addrs, ap.Addr()) {
			return t, nil
		}
	}
	return nil, nil
}
