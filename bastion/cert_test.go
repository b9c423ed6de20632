package bastion_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// TestCertificatePrincipals: as sshd, a user certificate must list a
// principal naming the user (or one of the user's principals); an empty
// list, which x/crypto's CertChecker lets through for any user, is
// refused.
func TestCertificatePrincipals(t *testing.T) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := gossh.NewSignerFromKey(caPriv)
	userPub, _, _ := ed25519.GenerateKey(rand.Reader)
	userKey, _ := gossh.NewPublicKey(userPub)
	p := policyFor(t, `
trusted_user_ca_keys: ["`+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(ca.PublicKey())))+`"]
users:
  alice: {}
  bob: {principals: [ops-bob, bob]}
`)
	for _, tt := range []struct {
		user       string
		principals []string
		want       string // "" = accepted
	}{
		{"alice", []string{"alice"}, ""},
		{"bob", []string{"ops-bob"}, ""},
		{"alice", nil, "certificate: no principals (it must name the user)"},
		{"bob", []string{}, "certificate: no principals (it must name the user)"},
		{"alice", []string{"bob"}, `certificate: ssh: principal "alice" not in the set of valid principals for given certificate: ["bob"]`},
		{"alice", []string{""}, `not in the set of valid principals`},
	} {
		cert := &gossh.Certificate{Key: userKey, CertType: gossh.UserCert, KeyId: "t", ValidPrincipals: tt.principals,
			ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
		if err := cert.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		_, err := p.CheckKey(tt.user, cert, netip.MustParseAddr("192.0.2.1"))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s with %q: %v", tt.user, tt.principals, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s with %q: %v, want %q", tt.user, tt.principals, err, tt.want)
		}
	}
}
