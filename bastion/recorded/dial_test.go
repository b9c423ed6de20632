package recorded

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func newSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hostCert(t testing.TB, key gossh.PublicKey, ca gossh.Signer, typ uint32, principals []string, from, to time.Time) *gossh.Certificate {
	t.Helper()
	c := &gossh.Certificate{Key: key, CertType: typ, KeyId: "host", ValidPrincipals: principals,
		ValidAfter: uint64(from.Unix()), ValidBefore: uint64(to.Unix())}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHostKeyCallback(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ca, otherCA, host, other := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	valid := hostCert(t, host.PublicKey(), ca, gossh.HostCert, []string{"db1.internal"}, now.Add(-time.Hour), now.Add(time.Hour))
	tests := []struct {
		name   string
		target Target
		key    gossh.PublicKey
		ok     bool
	}{
		{"pinned key", Target{Addr: "db1.internal:22", HostKeys: []gossh.PublicKey{host.PublicKey()}}, host.PublicKey(), true},
		{"pinned key, another presented", Target{Addr: "db1.internal:22", HostKeys: []gossh.PublicKey{host.PublicKey()}}, other.PublicKey(), false},
		{"certificate of a pinned key, no CA", Target{Addr: "db1.internal:22", HostKeys: []gossh.PublicKey{host.PublicKey()}}, valid, true},
		{"certificate, no CA, nothing pinned", Target{Addr: "db1.internal:22"}, valid, false},
		{"certificate from the CA", Target{Addr: "db1.internal:22", HostCA: ca.PublicKey()}, valid, true},
		{"certificate principal is the target name", Target{Name: "db1.internal", Addr: "10.0.0.5:22", HostCA: ca.PublicKey()}, valid, true},
		{"certificate from another CA", Target{Addr: "db1.internal:22", HostCA: otherCA.PublicKey()}, valid, false},
		{"certificate for another host", Target{Name: "db2", Addr: "db2.internal:22", HostCA: ca.PublicKey()}, valid, false},
		{"expired certificate", Target{Addr: "db1.internal:22", HostCA: ca.PublicKey()},
			hostCert(t, host.PublicKey(), ca, gossh.HostCert, []string{"db1.internal"}, now.Add(-2*time.Hour), now.Add(-time.Hour)), false},
		{"user certificate presented as host", Target{Addr: "db1.internal:22", HostCA: ca.PublicKey()},
			hostCert(t, host.PublicKey(), ca, gossh.UserCert, []string{"db1.internal"}, now.Add(-time.Hour), now.Add(time.Hour)), false},
		{"plain key with only a CA", Target{Addr: "db1.internal:22", HostCA: ca.PublicKey()}, host.PublicKey(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := HostKeyCallback(tt.target, func() time.Time { return now })("db1.internal:22", nil, tt.key)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrHostKey) {
				t.Fatalf("got %v, want ErrHostKey", err)
			}
		})
	}
}

func TestSignUserCert(t *testing.T) {
	ca := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	signer, cert, err := SignUserCert(ca, "alice", "alice", "20270115T080000Z-00000001", 5*time.Minute, true, now)
	if err != nil {
		t.Fatal(err)
	}
	if signer.PublicKey().Type() != gossh.CertAlgoED25519v01 {
		t.Errorf("signer presents %s", signer.PublicKey().Type())
	}
	checker := gossh.CertChecker{
		IsUserAuthority: func(k gossh.PublicKey) bool { return string(k.Marshal()) == string(ca.PublicKey().Marshal()) },
		Clock:           func() time.Time { return now },
	}
	if err := checker.CheckCert("alice", cert); err != nil {
		t.Errorf("certificate rejected: %v", err)
	}
	if err := checker.CheckCert("root", cert); err == nil {
		t.Error("certificate valid for another principal")
	}
	checker.Clock = func() time.Time { return now.Add(6 * time.Minute) }
	if err := checker.CheckCert("alice", cert); err == nil {
		t.Error("certificate valid after its TTL")
	}
	if cert.KeyId != "rampart-bastion session=20270115T080000Z-00000001 user=alice" {
		t.Errorf("KeyId %q", cert.KeyId)
	}
	if _, ok := cert.Extensions["permit-pty"]; !ok || len(cert.Extensions) != 1 || len(cert.CriticalOptions) != 0 {
		t.Errorf("extensions %v, critical options %v: want only permit-pty", cert.Extensions, cert.CriticalOptions)
	}
	_, cert, _ = SignUserCert(ca, "alice", "alice", "x", time.Minute, false, now)
	if len(cert.Extensions) != 0 {
		t.Errorf("no-pty certificate has extensions %v", cert.Extensions)
	}
}
