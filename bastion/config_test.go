package bastion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
)

func exampleConfigPath(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "examples", "bastion", "bastion.yaml")
}

func TestExampleConfigLoads(t *testing.T) {
	data, err := os.ReadFile(exampleConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := bastion.ParseConfig("bastion.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":2222" || c.Users["alice"].SecondFactor != "totp" || len(c.Targets) != 2 {
		t.Fatalf("unexpected example config: %+v", c)
	}
	if _, err := bastion.NewPolicy(c); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listn: x\n", `t.yaml:1: unknown key "listn" (did you mean "listen"?)`},
		{"bad target addr", "targets: [{name: a, addr: nowhere}]\n", "want host:port"},
		{"bad mode", "targets: [{name: a, addr: 'h:22', modes: [tunnel]}]\n", `modes: "tunnel"`},
		{"record without host key", "targets: [{name: a, addr: 'h:22', modes: [record]}]\n", "needs host_keys or host_ca"},
		{"duplicate target", "targets: [{name: a, addr: 'h:22'}, {name: a, addr: 'i:22'}]\n", "duplicate name"},
		{"short rsa", "users: {alice: {keys: [\"" + rsaKey(t, 1024) + "\"]}}\n", "at least 2048 bits"},
		{"no way in", "users: {alice: {}}\n", "could never log in"},
		{"bad user name", "users: {Alice: {keys: [\"" + edKey(t) + "\"]}}\n", "not a valid user name"},
		{"unknown group", "users: {alice: {keys: [\"" + edKey(t) + "\"], groups: [ops]}}\n", `unknown group "ops"`},
		{"bad allow pattern", "users: {alice: {keys: [\"" + edKey(t) + "\"], targets: [web1]}}\n", "not a target name"},
		{"bad port", "users: {alice: {keys: [\"" + edKey(t) + "\"], targets: ['h:99999']}}\n", "invalid port"},
		{"duo without duo", "users: {alice: {keys: [\"" + edKey(t) + "\"], second_factor: duo}}\n", "no duo section"},
		{"duo fail mode", "duo: {integration_key: a, secret_key_file: b, api_host: c, fail_mode: maybe}\n", "fail_mode"},
		{"two documents", "listen: ':1'\n---\nlisten: ':2'\n", "more than one YAML document"},
		{"recording failure policy", "recording: {on_failure: ignore}\n", `recording.on_failure: "ignore"`},
		{"recording retention", "recording: {retention: {max_bytes: -1}}\n", "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bastion.ParseConfig("t.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func edKey(t testing.TB) string {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pk, _ := gossh.NewPublicKey(pub)
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk)))
}

func rsaKey(t testing.TB, bits int) string {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := gossh.NewPublicKey(&k.PublicKey)
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk)))
}

// FuzzParseConfig: no config file, however broken, panics the loader,
// and whatever it accepts compiles into a policy.
func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile(exampleConfigPath(f)); err == nil {
		f.Add(data)
	}
	f.Add([]byte("listen: ':22'\ntargets: [{name: a, addr: 'h:22', modes: [jump, record], host_keys: [x]}]\n"))
	f.Add([]byte("users: {alice: {keys: [\"ssh-ed25519 AAAA\"], targets: ['[fd00::/64]:*', '*.lab:22,2222']}}\n"))
	f.Add([]byte("groups: {g: {targets: ['10.0.0.0/8:22']}}\nusers: {a: {groups: [g]}}\n"))
	f.Add([]byte("brute_force: {window: 7d, lockout: -1s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := bastion.ParseConfig("fuzz.yaml", data)
		if err != nil {
			return
		}
		if _, err := bastion.NewPolicy(c); err != nil {
			t.Fatalf("accepted config does not compile: %v\n%s", err, data)
		}
	})
}

func policyFor(t *testing.T, yaml string) *bastion.Policy {
	t.Helper()
	c, err := bastion.ParseConfig("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bastion.NewPolicy(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	key := edKey(t)
	res := &fakeResolver{answers: map[string][]netip.Addr{"a.lab.internal": {netip.MustParseAddr("10.9.9.9")}}}
	p := policyWith(t, bastion.PolicyOptions{Resolver: res}, `
targets:
  - {name: web1, addr: "10.0.0.5:22"}
  - {name: web2, addr: "10.0.0.7:2222"}
  - {name: db1, addr: "10.0.0.6:22", modes: [record], host_keys: ["`+key+`"]}
groups:
  ops: {targets: [web1, db1]}
users:
  alice: {keys: ["`+key+`"], groups: [ops], targets: ["10.0.1.0/24:22", "*.lab.internal:22,2222", "[fd00::/64]:*", web2]}
  bob: {keys: ["`+key+`"], targets: ["10.0.0.0/24:*"]}
`)
	tests := []struct {
		user, host string
		port       uint16
		dial       string // "" = refused
	}{
		{"alice", "web1", 22, "10.0.0.5:22"},
		{"alice", "10.0.0.5", 22, "10.0.0.5:22"},
		{"alice", "web1", 2222, ""},
		{"alice", "web2", 22, "10.0.0.7:2222"}, // ssh -J asks for port 22 by default
		{"alice", "web2", 2222, "10.0.0.7:2222"},
		{"alice", "db1", 22, ""}, // record only
		{"alice", "10.0.1.9", 22, "10.0.1.9:22"},
		{"alice", "10.0.1.9", 23, ""},
		{"alice", "10.0.2.9", 22, ""},
		{"alice", "a.lab.internal", 2222, "10.9.9.9:2222"}, // the address checked is the one dialled
		{"alice", "A.LAB.internal.", 22, "10.9.9.9:22"},
		{"alice", "lab.internal", 22, ""},
		{"alice", "a.lab.internal.evil.com", 22, ""},
		{"alice", "fd00::1", 5432, "[fd00::1]:5432"},
		{"alice", "fd01::1", 22, ""},
		{"alice", "localhost", 22, ""}, // a name no rule names: refused without DNS
		{"bob", "10.0.0.6", 22, ""},    // a pattern cannot open a jump to a record-only target
		{"bob", "10.0.0.9", 8080, "10.0.0.9:8080"},
		{"bob", "web1", 22, "10.0.0.5:22"}, // web1's address is in bob's range
		{"mallory", "web1", 22, ""},
	}
	for _, tt := range tests {
		r, err := p.Resolve(context.Background(), tt.user, tt.host, tt.port)
		if tt.dial == "" {
			if err == nil {
				t.Errorf("%s -> %s:%d allowed (dial %s), want refused", tt.user, tt.host, tt.port, r.Dial)
			} else if !errors.Is(err, bastion.ErrNotAllowed) {
				t.Errorf("%s -> %s:%d: error %v does not wrap ErrNotAllowed", tt.user, tt.host, tt.port, err)
			}
			continue
		}
		if err != nil || r.Dial != tt.dial {
			t.Errorf("%s -> %s:%d = %q, %v; want %q", tt.user, tt.host, tt.port, r.Dial, err, tt.dial)
		}
	}
	var names []string
	for _, tg := range p.Allowed("alice") {
		names = append(names, tg.Name)
	}
	if strings.Join(names, ",") != "web1,web2,db1" {
		t.Errorf("Allowed(alice) = %v", names)
	}
}

func TestCheckKey(t *testing.T) {
	caPub, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(caPriv)
	caKey, _ := gossh.NewPublicKey(caPub)
	otherCA, _ := gossh.NewSignerFromKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
	userPub, _, _ := ed25519.GenerateKey(rand.Reader)
	userKey, _ := gossh.NewPublicKey(userPub)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := gossh.NewPublicKey(&ecKey.PublicKey)
	listed := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(ecPub)))
	p := policyFor(t, `
trusted_user_ca_keys: ["`+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(caKey)))+`"]
users:
  alice: {keys: ["`+listed+`"]}
  bob: {principals: [bob, robert]}
`)
	cert := func(signer gossh.Signer, principals []string, typ uint32, opts map[string]string, valid time.Duration) *gossh.Certificate {
		c := &gossh.Certificate{Key: userKey, CertType: typ, ValidPrincipals: principals,
			ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(valid).Unix()),
			Permissions: gossh.Permissions{CriticalOptions: opts}}
		if err := c.SignCert(rand.Reader, signer); err != nil {
			t.Fatal(err)
		}
		return c
	}
	src := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		name string
		user string
		key  gossh.PublicKey
		ok   bool
	}{
		{"listed key", "alice", ecPub, true},
		{"unlisted key", "alice", userKey, false},
		{"unknown user", "carol", ecPub, false},
		{"certificate", "bob", cert(ca, []string{"robert"}, gossh.UserCert, nil, time.Hour), true},
		{"certificate for someone else", "bob", cert(ca, []string{"alice"}, gossh.UserCert, nil, time.Hour), false},
		{"certificate from another CA", "bob", cert(otherCA, []string{"bob"}, gossh.UserCert, nil, time.Hour), false},
		{"expired certificate", "bob", cert(ca, []string{"bob"}, gossh.UserCert, nil, -time.Second), false},
		{"host certificate", "bob", cert(ca, []string{"bob"}, gossh.HostCert, nil, time.Hour), false},
		{"source-address matches", "bob", cert(ca, []string{"bob"}, gossh.UserCert, map[string]string{"source-address": "192.0.2.0/24"}, time.Hour), true},
		{"source-address does not match", "bob", cert(ca, []string{"bob"}, gossh.UserCert, map[string]string{"source-address": "10.0.0.0/8"}, time.Hour), false},
		{"unknown critical option", "bob", cert(ca, []string{"bob"}, gossh.UserCert, map[string]string{"force-command": "ls"}, time.Hour), false},
	}
	for _, tt := range tests {
		_, err := p.CheckKey(tt.user, tt.key, src)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckKey = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestSSHFPGolden(t *testing.T) {
	k, _ := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, 32)))
	got, err := bastion.SSHFP("bastion.example.org", []gossh.PublicKey{k})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "sshfp.golden"))
	if err != nil || got != string(want) {
		t.Fatalf("SSHFP:\n%s\nwant (testdata/sshfp.golden):\n%s", got, want)
	}
}
