package bastion_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion"
)

// fakeResolver answers from a map and counts the lookups.
type fakeResolver struct {
	answers map[string][]netip.Addr
	mu      sync.Mutex
	asked   []string
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, host)
	if a, ok := f.answers[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (f *fakeResolver) lookups() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

// clientNames drops the lookups of the config's own record-only target
// name (rec.internal), which a jump allowed by a rule costs: what is left
// are lookups of names the client chose.
func clientNames(asked []string) []string {
	var out []string
	for _, a := range asked {
		if a != "rec.internal" {
			out = append(out, a)
		}
	}
	return out
}

func policyWith(t testing.TB, o bastion.PolicyOptions, yaml string) *bastion.Policy {
	t.Helper()
	c, err := bastion.ParseConfig("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bastion.NewPolicyWith(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostAddr is the address of the bastion's host in these worlds, besides
// loopback.
var hostAddr = netip.MustParseAddr("192.0.2.10")

// destWorld is a policy with a record-only target, jump targets, broad
// rules over them, the bastion's own listeners and names in DNS; with r,
// the config spells its addresses and ports at random.
func destWorld(t testing.TB, r *rand.Rand) (*bastion.Policy, *fakeResolver) {
	t.Helper()
	res := &fakeResolver{answers: map[string][]netip.Addr{
		"a.lab.internal":    {netip.MustParseAddr("10.0.0.7")},
		"db.lab.internal":   {netip.MustParseAddr("127.0.0.1")},
		"self.lab.internal": {netip.MustParseAddr("::ffff:192.0.2.10")},
		"six.lab.internal":  {netip.MustParseAddr("fd00::9")},
		"rec.internal":      {netip.MustParseAddr("10.0.0.66")},
	}}
	self := bastion.NewSelf(func() ([]netip.Addr, error) { return []netip.Addr{hostAddr}, nil })
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMwTfnuYTEdMrekLKuUkCjarQHf3fhXGKot9eY38xuKe"
	spellCfg := func(host string) string {
		if r == nil {
			return host
		}
		return spell(r, host)
	}
	// cidr spells an IPv4 range as a rule's host: inet_aton's forms, or
	// the IPv4-mapped range.
	cidr := func(base string, bits int) string {
		if r == nil {
			return fmt.Sprintf("%s/%d", base, bits)
		}
		a := netip.MustParseAddr(base)
		if r.IntN(3) == 0 {
			return fmt.Sprintf("[%s/%d]", spellIPv6(r, a.As16(), r.IntN(2) == 0), bits+96)
		}
		return fmt.Sprintf("%s/%d", spellIPv4(r, a), bits)
	}
	hp := func(host string, port int) string {
		h := spellCfg(host)
		if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
			h = "[" + h + "]"
		}
		ps := strconv.Itoa(port)
		if r != nil {
			ps = strings.Repeat("0", r.IntN(3)) + ps
		}
		return h + ":" + ps
	}
	yaml := fmt.Sprintf(`
listen: %q
metrics_listen: %q
targets:
  - {name: db1, addr: %q, modes: [record], host_keys: [%q]}
  - {name: web1, addr: %q}
  - {name: web6, addr: %q}
  - {name: rec6, addr: %q, modes: [record], host_keys: [%q]}
  - {name: recname, addr: "REC.internal.:22", modes: [record], host_keys: [%q]}
users:
  alice:
    keys: [%q]
    targets: [%q, %q, %q, %q, "*.lab.internal:22,22725,2222", %q]
  bob:
    keys: [%q]
    targets: [web1, web6, %q]
`,
		hp("127.0.0.1", 2222), hp("127.0.0.1", 9322),
		hp("127.0.0.1", 22725), key, hp("10.0.0.5", 22), hp("fd00::5", 22), hp("fd00::6", 22), key, key,
		key, cidr("127.0.0.0", 8)+":22724,22725,2222,9322", cidr("10.0.0.0", 24)+":*", "[fd00::/64]:22", cidr("192.0.2.0", 24)+":*", "[::ffff:127.0.0.0/104]:22726",
		key, "[::ffff:10.0.0.0/120]:22")
	return policyWith(t, bastion.PolicyOptions{Resolver: res, Self: self}, yaml), res
}

// destCase is one destination, written canonically.
var destCases = []struct {
	host string
	port uint16
}{
	{"127.0.0.1", 22725}, // db1, record-only
	{"127.0.0.1", 22724}, // allowed by alice's range
	{"127.0.0.2", 22725}, // not db1
	{"127.0.0.1", 22726}, // the mapped rule, unmapped
	{"127.0.0.1", 2222},  // the bastion's SSH listener
	{"127.0.0.9", 9322},  // its metrics, on another loopback address
	{"192.0.2.10", 2222}, // its host's address
	{"192.0.2.11", 2222}, // another host
	{"10.0.0.5", 22},     // web1
	{"10.0.0.66", 22},    // recname's address (a name in the config)
	{"10.0.0.9", 80},
	{"10.0.0.9", 22},
	{"fd00::5", 22}, // web6
	{"fd00::6", 22}, // rec6, record-only
	{"fd00::9", 22},
	{"fd01::9", 22},
	{"a.lab.internal", 22},
	{"db.lab.internal", 22725}, // resolves to db1
	{"self.lab.internal", 2222},
	{"six.lab.internal", 22},
	{"nowhere.lab.internal", 22},
	{"localhost", 22724},
	{"db1.internal", 22},
}

type resolveOutcome struct {
	allowed bool
	dial    string
	name    string
	err     string
}

func resolveOnce(p *bastion.Policy, user, host string, port uint16) resolveOutcome {
	rt, err := p.Resolve(context.Background(), user, host, port)
	o := resolveOutcome{allowed: err == nil, dial: rt.Dial, name: rt.Name()}
	if err != nil {
		o.err = err.Error()
	}
	return o
}

// TestResolveSpellings is the property behind one canonical destination:
// for generated spellings of each destination (mapped IPv6, IPv6
// compressions and case, inet_aton's numeric forms, trailing dots, upper
// case names), in a config whose own addresses and ports are spelled at
// random too, the decision, the address dialled and the name audited are
// those of the canonical spelling in the canonical config.
func TestResolveSpellings(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RAMPART_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	const configs, spellings = 8, 60
	r := rand.New(rand.NewPCG(seed, 13))
	base, _ := destWorld(t, nil)
	want := map[string]resolveOutcome{}
	for _, user := range []string{"alice", "bob"} {
		for _, d := range destCases {
			want[user+" "+d.host+" "+strconv.Itoa(int(d.port))] = resolveOnce(base, user, d.host, d.port)
		}
	}
	// What the canonical spellings must decide, every case: the
	// property below then holds each spelling to the right answer, not
	// only to the same one.
	expected := map[string]resolveOutcome{
		"alice 127.0.0.1 22725":         {name: "db1"},
		"alice 127.0.0.1 22724":         {allowed: true, dial: "127.0.0.1:22724", name: "127.0.0.1:22724"},
		"alice 127.0.0.2 22725":         {allowed: true, dial: "127.0.0.2:22725", name: "127.0.0.2:22725"},
		"alice 127.0.0.1 22726":         {allowed: true, dial: "127.0.0.1:22726", name: "127.0.0.1:22726"},
		"alice 127.0.0.1 2222":          {name: "127.0.0.1:2222"},
		"alice 127.0.0.9 9322":          {name: "127.0.0.9:9322"},
		"alice 192.0.2.10 2222":         {name: "192.0.2.10:2222"},
		"alice 192.0.2.11 2222":         {allowed: true, dial: "192.0.2.11:2222", name: "192.0.2.11:2222"},
		"alice 10.0.0.5 22":             {allowed: true, dial: "10.0.0.5:22", name: "web1"},
		"alice 10.0.0.66 22":            {name: "recname"},
		"alice 10.0.0.9 80":             {allowed: true, dial: "10.0.0.9:80", name: "10.0.0.9:80"},
		"alice 10.0.0.9 22":             {allowed: true, dial: "10.0.0.9:22", name: "10.0.0.9:22"},
		"alice fd00::5 22":              {allowed: true, dial: "[fd00::5]:22", name: "web6"},
		"alice fd00::6 22":              {name: "rec6"},
		"alice fd00::9 22":              {allowed: true, dial: "[fd00::9]:22", name: "[fd00::9]:22"},
		"alice fd01::9 22":              {name: "[fd01::9]:22"},
		"alice a.lab.internal 22":       {allowed: true, dial: "10.0.0.7:22", name: "a.lab.internal:22"},
		"alice db.lab.internal 22725":   {name: "db1"},
		"alice self.lab.internal 2222":  {name: "self.lab.internal:2222"},
		"alice six.lab.internal 22":     {allowed: true, dial: "[fd00::9]:22", name: "six.lab.internal:22"},
		"alice nowhere.lab.internal 22": {name: "nowhere.lab.internal:22"},
		"alice localhost 22724":         {name: "localhost:22724"},
		"alice db1.internal 22":         {name: "db1.internal:22"},
		"bob 127.0.0.1 22725":           {name: "db1"},
		"bob 127.0.0.1 22724":           {name: "127.0.0.1:22724"},
		"bob 127.0.0.2 22725":           {name: "127.0.0.2:22725"},
		"bob 127.0.0.1 22726":           {name: "127.0.0.1:22726"},
		"bob 127.0.0.1 2222":            {name: "127.0.0.1:2222"},
		"bob 127.0.0.9 9322":            {name: "127.0.0.9:9322"},
		"bob 192.0.2.10 2222":           {name: "192.0.2.10:2222"},
		"bob 192.0.2.11 2222":           {name: "192.0.2.11:2222"},
		"bob 10.0.0.5 22":               {allowed: true, dial: "10.0.0.5:22", name: "web1"},
		"bob 10.0.0.66 22":              {name: "recname"},
		"bob 10.0.0.9 80":               {name: "10.0.0.9:80"},
		"bob 10.0.0.9 22":               {allowed: true, dial: "10.0.0.9:22", name: "10.0.0.9:22"},
		"bob fd00::5 22":                {allowed: true, dial: "[fd00::5]:22", name: "web6"},
		"bob fd00::6 22":                {name: "rec6"},
		"bob fd00::9 22":                {name: "[fd00::9]:22"},
		"bob fd01::9 22":                {name: "[fd01::9]:22"},
		"bob a.lab.internal 22":         {name: "a.lab.internal:22"},
		"bob db.lab.internal 22725":     {name: "db.lab.internal:22725"},
		"bob self.lab.internal 2222":    {name: "self.lab.internal:2222"},
		"bob six.lab.internal 22":       {name: "six.lab.internal:22"},
		"bob nowhere.lab.internal 22":   {name: "nowhere.lab.internal:22"},
		"bob localhost 22724":           {name: "localhost:22724"},
		"bob db1.internal 22":           {name: "db1.internal:22"},
	}
	for key, got := range want {
		w, ok := expected[key]
		if !ok {
			t.Errorf("%s: no expected outcome (add it to the table)", key)
			continue
		}
		got.err = ""
		if got != w {
			t.Errorf("%s: %+v, want %+v (%s)", key, got, w, want[key].err)
		}
	}
	checks := 0
	for c := range configs {
		cfgRand := r
		if c == 0 {
			cfgRand = nil
		}
		p, res := destWorld(t, cfgRand)
		for _, user := range []string{"alice", "bob"} {
			for _, d := range destCases {
				key := user + " " + d.host + " " + strconv.Itoa(int(d.port))
				for range spellings {
					s := spell(r, d.host)
					before := len(res.lookups())
					got := resolveOnce(p, user, s, d.port)
					checks++
					if got != want[key] {
						t.Fatalf("seed %d config %d: %s as %q: %+v, want %+v", seed, c, key, s, got, want[key])
					}
					if asked := clientNames(res.lookups()[before:]); len(asked) > 0 && !strings.HasSuffix(d.host, ".lab.internal") {
						t.Fatalf("seed %d: %s as %q looked up %v", seed, key, s, asked)
					}
				}
			}
		}
	}
	t.Logf("seed %d: %d spellings in %d configs agree with the canonical one", seed, checks, configs)
}

// TestResolveNoDNSForUnnamed: a name no host-name rule matches is refused
// without a lookup; an address is never looked up.
func TestResolveNoDNSForUnnamed(t *testing.T) {
	p, res := destWorld(t, nil)
	for _, host := range []string{"localhost", "db1.internal", "evil.example", "a.lab.internal.evil.example", "LOCALHOST.", "127.0.0.1", "web7"} {
		if _, err := p.Resolve(context.Background(), "alice", host, 22724); err == nil && strings.Contains(host, "l") && host != "127.0.0.1" {
			t.Errorf("%s allowed", host)
		}
	}
	if asked := res.lookups(); len(asked) != 0 {
		t.Errorf("lookups for names no rule matches: %v", asked)
	}
	if _, err := p.Resolve(context.Background(), "alice", "A.lab.internal", 22); err != nil {
		t.Fatal(err)
	}
	if asked := clientNames(res.lookups()); len(asked) != 1 || asked[0] != "a.lab.internal" {
		t.Errorf("lookups for a rule's name: %v, want [a.lab.internal]", asked)
	}
}

// TestResolveSelf: the bastion's own listeners are refused on every
// address of its host, whatever the rules say; a host whose addresses
// cannot be read refuses those ports.
func TestResolveSelf(t *testing.T) {
	self := bastion.NewSelf(func() ([]netip.Addr, error) { return nil, errors.New("netlink: permission denied") })
	if err := self.Add("[::]:2200"); err != nil {
		t.Fatal(err)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMwTfnuYTEdMrekLKuUkCjarQHf3fhXGKot9eY38xuKe"
	p := policyWith(t, bastion.PolicyOptions{Self: self}, `
listen: "10.1.1.1:2222"
targets:
  - {name: me, addr: "127.0.0.1:2222"}
users:
  alice: {keys: ["`+key+`"], targets: [me, "0.0.0.0/0:*", "[::/0]:*"]}
`)
	for _, tt := range []struct {
		host string
		port uint16
		ok   bool
	}{
		{"me", 22, false},
		{"127.0.0.1", 2222, false},
		{"127.255.0.1", 2200, false},
		{"::1", 2222, false},
		{"::ffff:127.0.0.1", 2200, false},
		{"10.1.1.1", 2222, false}, // the listen address
		{"10.1.1.2", 2222, false}, // host addresses unreadable: fail closed
		{"10.1.1.2", 22, true},
		{"127.0.0.1", 22, true},
		{"0.0.0.0", 22, false}, // unspecified: this host
		{"::", 22, false},
	} {
		_, err := p.Resolve(context.Background(), "alice", tt.host, tt.port)
		if (err == nil) != tt.ok {
			t.Errorf("%s port %d: %v, want allowed=%v", tt.host, tt.port, err, tt.ok)
		}
	}
}

// FuzzResolve: whatever the client sends as a destination, Resolve
// decides for it what it decides for the canonical spelling (and for
// another spelling generated from the input), refuses unparsable text
// without DNS, and never dials the bastion itself, a record-only target
// or anything but a canonical address.
func FuzzResolve(f *testing.F) {
	for _, d := range destCases {
		f.Add(d.host, d.port, uint64(1))
	}
	for _, s := range []string{"::ffff:7f00:1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "fe80::1%lo", "DB.LAB.INTERNAL."} {
		f.Add(s, uint16(22725), uint64(2))
	}
	p, res := destWorld(f, nil)
	f.Fuzz(func(t *testing.T, host string, port uint16, seed uint64) {
		before := len(res.lookups())
		got := resolveOnce(p, "alice", host, port)
		asked := clientNames(res.lookups()[before:])
		rt, _ := p.Resolve(context.Background(), "alice", host, port)
		canon := rt.Dest.Host.String()
		if got.allowed {
			ap, err := netip.ParseAddrPort(got.dial)
			if err != nil || ap.Addr().Is4In6() || ap.Addr().Zone() != "" || ap.String() != got.dial {
				t.Fatalf("%q: dial %q is not a canonical address", host, got.dial)
			}
			if ap.Port() != port && rt.Target == nil {
				t.Fatalf("%q port %d: dial %q", host, port, got.dial)
			}
			if ap.Addr().IsLoopback() && (ap.Port() == 2222 || ap.Port() == 9322) || ap.Addr() == hostAddr && (ap.Port() == 2222 || ap.Port() == 9322) {
				t.Fatalf("%q: jump to the bastion itself (%s)", host, got.dial)
			}
			if got.dial == "127.0.0.1:22725" || got.dial == "[fd00::6]:22" || got.dial == "10.0.0.66:22" {
				t.Fatalf("%q: jump to a record-only target (%s)", host, got.dial)
			}
		}
		if !rt.Dest.Host.IsValid() && rt.Target == nil {
			if got.allowed || len(asked) > 0 {
				t.Fatalf("unparsable %q: allowed=%v, lookups %v", host, got.allowed, asked)
			}
			return
		}
		if rt.Target != nil {
			return // a name of a target: its own route
		}
		if len(asked) > 0 && !strings.HasSuffix(canon, ".lab.internal") {
			t.Fatalf("%q (%s): looked up %v", host, canon, asked)
		}
		if again := resolveOnce(p, "alice", canon, port); again != got {
			t.Fatalf("%q: %+v, but its canonical form %q: %+v", host, got, canon, again)
		}
		r := rand.New(rand.NewPCG(seed, 7))
		if s := spell(r, canon); resolveOnce(p, "alice", s, port) != got {
			t.Fatalf("%q: %+v, but %q: %+v", host, got, s, resolveOnce(p, "alice", s, port))
		}
	})
}
