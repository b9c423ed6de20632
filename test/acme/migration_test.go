package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/test/testenv"
)

// A CA migration as an operator does it, with the acme-renew binary and
// two Pebbles (two roots; the second requires External Account Binding):
//
//  1. issue from A;
//  2. point the account at B: the next run renews at once ("issued by
//     another CA"), registers at B with EAB, and names no certificate in
//     "replaces" (B never issued it);
//  3. the reproducer of issue 14: state.json deleted and the account
//     pointed back at A; a renewal names nothing in "replaces" (it used to
//     send the certificate B issued, and A refused every order as
//     malformed, with growing backoff);
//  4. a state file that claims the certificate is B's, with B's window:
//     "replaces" is sent, B refuses it (malformed), and the order is
//     retried once without it and succeeds;
//  5. the account vanished at the CA (accountDoesNotExist): registered
//     again, with EAB, and the renewal succeeds.
func TestCAMigration(t *testing.T) {
	testenv.RequireRoot(t)
	const kid, hmac = "kid-migrate", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	pebA := testenv.StartPebble(t, testenv.PebbleOptions{})
	pebB := testenv.StartPebble(t, testenv.PebbleOptions{EABKeys: map[string]string{kid: hmac}})
	pxA, pxB := startACMEProxy(t, pebA), startACMEProxy(t, pebB)
	bin := acmeRenewBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "acme.yaml")
	crt := filepath.Join(dir, "links", "site.crt")
	domains := []string{"migrate.example.com"}
	useCA := func(p *testenv.Pebble, px *acmeProxy, eab string) {
		doc := fmt.Sprintf(`state_dir: %s/state
accounts:
  main: {directory: %q, email: ops@example.com, ca_bundle: %q%s}
certificates:
  - name: site
    domains: [%s]
    challenge: {http01: {address: 127.0.0.1, port: %d}}
    output: {key: %s/links/site.key, fullchain: %s}
`, dir, px.DirectoryURL, px.CAFile, eab, strings.Join(domains, ", "), p.HTTPPort, dir, crt)
		if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	eabB := ", eab: {kid: " + kid + ", hmac_key: " + hmac + "}"
	rootsOf := func(p *testenv.Pebble) *x509.CertPool {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(p.Root(t))
		return pool
	}
	renewed := func(what string, args ...string) *x509.Certificate {
		t.Helper()
		r := runBinary(t, bin, nil, append([]string{"run", "--config", cfgPath}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "renewed") {
			t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		t.Logf("%s:\n%s%s", what, r.stdout, r.stderr)
		return leafFile(t, crt)
	}
	lastReplaces := func(px *acmeProxy) (any, int) {
		o := px.ordersSeen()
		if len(o) == 0 {
			t.Fatal("no new-order reached the CA")
		}
		return o[len(o)-1]["replaces"], len(o)
	}
	accountFile := filepath.Join(dir, "state", "accounts", "main", "account.json")
	type accountJSON struct {
		Directory    string
		Registration struct{ URI string }
	}
	readAccount := func() accountJSON {
		var a accountJSON
		b, err := os.ReadFile(accountFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}

	// 1. From A.
	useCA(pebA, pxA, "")
	renewed("issue from A")
	checkPair(t, filepath.Join(dir, "links", "site.key"), crt, rootsOf(pebA), domains)

	// 2. To B, no manual step.
	useCA(pebB, pxB, eabB)
	r := runBinary(t, bin, nil, "list", "--config", cfgPath)
	if !strings.Contains(r.stdout, "issued by another CA") {
		t.Fatalf("list after pointing the account at B:\n%s%s", r.stdout, r.stderr)
	}
	renewed("switch to B")
	checkPair(t, filepath.Join(dir, "links", "site.key"), crt, rootsOf(pebB), domains)
	if rep, _ := lastReplaces(pxB); rep != nil {
		t.Fatalf("the first order at B named %v in replaces", rep)
	}
	accB := readAccount()
	if accB.Directory != pxB.DirectoryURL || accB.Registration.URI == "" {
		t.Fatalf("account after the switch: %+v", accB)
	}

	// 3. The reproducer: state lost, account pointed at A again.
	if err := os.Remove(filepath.Join(dir, "state", "state.json")); err != nil {
		t.Fatal(err)
	}
	useCA(pebA, pxA, "")
	renewed("state deleted, back to A", "--force", "site")
	checkPair(t, filepath.Join(dir, "links", "site.key"), crt, rootsOf(pebA), domains)
	if rep, _ := lastReplaces(pxA); rep != nil {
		t.Fatalf("after the state was lost, the order at A named %v (a certificate from B) in replaces", rep)
	}

	// 4. A stale state that names B as the issuer of A's certificate,
	// with a window from B in the past.
	useCA(pebB, pxB, eabB)
	fromA := leafFile(t, crt)
	id, err := certificate.MakeARICertID(fromA)
	if err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(dir, "state", "state.json")
	st, err := acme.LoadState(statePath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	cs := st.Certificates["site"]
	cs.IssuedBy = &acme.IssuedBy{Cert: strings.ToLower(strings.ReplaceAll(fingerprint(fromA), ":", "")), Directory: pxB.DirectoryURL, Account: accB.Registration.URI}
	cs.ARI = &acme.ARIState{CertID: id, Directory: pxB.DirectoryURL, WindowStart: now.Add(-2 * time.Hour), WindowEnd: now.Add(-time.Hour), RenewAt: now.Add(-90 * time.Minute), NextCheck: now.Add(6 * time.Hour)}
	// The account file says A: acme-renew registers at B again (the
	// same key: B answers with the account it knows).
	if err := st.Save(statePath); err != nil {
		t.Fatal(err)
	}
	_, before := lastReplaces(pxB)
	renewed("stale ARI state naming B")
	orders := pxB.ordersSeen()[before:]
	if len(orders) != 2 || orders[0]["replaces"] != id || orders[1]["replaces"] != nil {
		t.Fatalf("orders at B: %v; want one naming %s, refused, then one without replaces", orders, id)
	}
	checkPair(t, filepath.Join(dir, "links", "site.key"), crt, rootsOf(pebB), domains)

	// 5. The account vanished at B: its URL leads nowhere and B has never
	// seen its key. It is registered again, which B allows only with EAB.
	acc := readAccount()
	raw, _ := os.ReadFile(accountFile)
	gone := acc.Registration.URI[:strings.LastIndex(acc.Registration.URI, "/")+1] + "0000000000000000"
	os.WriteFile(accountFile, []byte(strings.ReplaceAll(string(raw), acc.Registration.URI, gone)), 0o600)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "state", "accounts", "main", "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	renewed("account vanished", "--force", "site")
	if now := readAccount(); now.Registration.URI == gone || now.Registration.URI == acc.Registration.URI {
		t.Fatalf("account after accountDoesNotExist: %+v", now)
	}
	checkPair(t, filepath.Join(dir, "links", "site.key"), crt, rootsOf(pebB), domains)
}
