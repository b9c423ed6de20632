package bastion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// Target is a named host from the config, ready to use.
type Target struct {
	Name     string
	Addr     string // host:port
	User     string // remote login; "" means the bastion user's name
	Modes    []string
	HostKeys []gossh.PublicKey
	HostCA   gossh.PublicKey
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
	targets  map[string]*Target
	order    []*Target
	userCAs  []gossh.PublicKey
	resolver *net.Resolver
}

// ErrNotAllowed is wrapped by every refusal of a destination.
var ErrNotAllowed = errors.New("destination not allowed")

// NewPolicy compiles a validated Config.
func NewPolicy(c *Config) (*Policy, error) {
	p := &Policy{users: map[string]*User{}, targets: map[string]*Target{}, resolver: net.DefaultResolver}
	for _, s := range c.TrustedUserCAKeys {
		k, err := ParseAuthorizedKey(s)
		if err != nil {
			return nil, err
		}
		p.userCAs = append(p.userCAs, k)
	}
	names := map[string]bool{}
	for _, tc := range c.Targets {
		t := &Target{Name: tc.Name, Addr: tc.Addr, User: tc.User, Modes: tc.Modes}
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
		p.targets[t.Name] = t
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

// Target returns the named target, or nil.
func (p *Policy) Target(name string) *Target { return p.targets[name] }

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
	host, ps, _ := net.SplitHostPort(t.Addr)
	port, _ := strconv.ParseUint(ps, 10, 16)
	for _, r := range u.rules {
		if r.name == t.Name {
			return true
		}
		if r.name == "" && r.portOK(uint16(port)) && r.matchLiteral(host) {
			return true
		}
	}
	return false
}

// matchLiteral matches host (a name or an address literal) without DNS.
func (r allowRule) matchLiteral(host string) bool {
	if r.glob != "" {
		ok, _ := path.Match(r.glob, strings.ToLower(host))
		return ok
	}
	if a, err := netip.ParseAddr(host); err == nil && r.prefix.IsValid() {
		return r.prefix.Contains(a.Unmap())
	}
	return false
}

// Route is where a jump goes once allowed.
type Route struct {
	Dial   string  // host:port to connect to
	Target *Target // the named target, if any
}

// Resolve decides whether user may open a direct-tcpip channel to
// host:port and where to connect. A target name ("ssh -J bastion web1")
// goes to that target's address when the port asked for is the target's
// port or 22. An address range allows a host name only if it resolves into
// the range, and then the bastion connects to the address it checked, so a
// DNS answer cannot change between check and use.
func (p *Policy) Resolve(ctx context.Context, user, host string, port uint16) (Route, error) {
	u := p.users[user]
	if u == nil {
		return Route{}, fmt.Errorf("%w: unknown user", ErrNotAllowed)
	}
	if len(host) > 255 || host == "" {
		return Route{}, fmt.Errorf("%w: invalid host", ErrNotAllowed)
	}
	if t := p.targets[host]; t != nil {
		_, tp, _ := net.SplitHostPort(t.Addr)
		if tp != strconv.Itoa(int(port)) && port != 22 {
			return Route{}, fmt.Errorf("%w: target %s listens on port %s", ErrNotAllowed, t.Name, tp)
		}
		if !p.targetAllowed(u, t) {
			return Route{}, fmt.Errorf("%w: %s is not in %s's targets", ErrNotAllowed, t.Name, user)
		}
		if !t.Allows(ModeJump) {
			return Route{}, fmt.Errorf("%w: %s allows recorded sessions only", ErrNotAllowed, t.Name)
		}
		return Route{Dial: t.Addr, Target: t}, nil
	}
	hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
	for _, t := range p.order {
		if t.Addr == hp {
			if !p.targetAllowed(u, t) {
				break
			}
			if !t.Allows(ModeJump) {
				return Route{}, fmt.Errorf("%w: %s allows recorded sessions only", ErrNotAllowed, t.Name)
			}
			return Route{Dial: t.Addr, Target: t}, nil
		}
	}
	var needDNS []allowRule
	for _, r := range u.rules {
		if r.name != "" || !r.portOK(port) {
			continue
		}
		if r.matchLiteral(host) {
			if p.recordOnly(hp) {
				return Route{}, fmt.Errorf("%w: %s is a recorded-only target", ErrNotAllowed, hp)
			}
			return Route{Dial: hp}, nil
		}
		if r.prefix.IsValid() {
			needDNS = append(needDNS, r)
		}
	}
	if _, err := netip.ParseAddr(host); err != nil && len(needDNS) > 0 {
		addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return Route{}, fmt.Errorf("%w: resolve %s: %v", ErrNotAllowed, host, err)
		}
		for _, a := range addrs {
			for _, r := range needDNS {
				if r.prefix.Contains(a.Unmap()) {
					dial := net.JoinHostPort(a.Unmap().String(), strconv.Itoa(int(port)))
					if p.recordOnly(dial) {
						return Route{}, fmt.Errorf("%w: %s is a recorded-only target", ErrNotAllowed, dial)
					}
					return Route{Dial: dial}, nil
				}
			}
		}
	}
	return Route{}, fmt.Errorf("%w: %s is not in %s's targets", ErrNotAllowed, hp, user)
}

// recordOnly: a pattern must not open a jump to a host whose named target
// insists on recording.
func (p *Policy) recordOnly(hp string) bool {
	for _, t := range p.order {
		if t.Addr == hp && !t.Allows(ModeJump) {
			return true
		}
	}
	return false
}
