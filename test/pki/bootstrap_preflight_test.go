package pki_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/pki/client"
	"github.com/rampart-sec/rampart/test/testenv"
)

// tamper rewrites a token's claims and keeps its header and signature, as
// someone who intercepted it would, to ask for other names.
func tamper(t *testing.T, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	raw, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// Issue 14: pki bootstrap checked --group, --key-mode and --lifetime only
// after the CA had issued, so the token was spent and nothing written;
// and a tampered token spent the genuine one. Now every refusal below
// happens before the token reaches the CA, and the same token then
// bootstraps. The CA itself refuses a token whose signature fails before
// step-ca records its ID: sent by the step CLI, the tampered token is
// refused and the genuine one still works.
func TestBootstrapValidatesBeforeSpending(t *testing.T) {
	step := testenv.Binary(t, "step")
	c := initBinCA(t, "")
	srv := c.serve(t, c.cfg)
	srv.waitServing(t, "pki serve")
	work := t.TempDir()
	notDir := filepath.Join(work, "file")
	os.WriteFile(notDir, nil, 0o600)

	tok := c.token(t, "web1", "--san", "localhost")
	out := filepath.Join(work, "host")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "no-such-group-rampart"}, `group "no-such-group-rampart"`},
		{[]string{"--owner", "no-such-user-rampart"}, `owner "no-such-user-rampart"`},
		{[]string{"--key-mode", "0644"}, "lets every user read the private key"},
		{[]string{"--key-mode", "01600"}, "permission bits only"},
		{[]string{"--lifetime", "90d"}, "the CA issues certificates of 5m0s to 720h0m0s"},
		{[]string{"--lifetime", "1m"}, "the CA issues certificates of 5m0s to 720h0m0s"},
		{[]string{"--lifetime", "-1h"}, "must be positive"},
		{[]string{"--out", filepath.Join(notDir, "sub")}, "output directory"},
	} {
		args := append([]string{"bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", tok, "--out", out}, tc.args...)
		code, msg := pkiRun(t, c.bin, args...)
		if code != 1 || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "still unused") {
			t.Errorf("bootstrap %v: exit %d, want 1 with %q and that the token is unused:\n%s", tc.args, code, tc.want, msg)
		}
		if _, err := os.Stat(filepath.Join(out, client.KeyFile)); err == nil {
			t.Fatalf("bootstrap %v wrote a key", tc.args)
		}
	}
	if code, msg := pkiRun(t, c.bin, "bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", tok, "--out", out, "--lifetime", "1d", "--key-mode", "0640", "--group", "root"); code != 0 {
		t.Fatalf("the token after the refusals: exit %d\n%s", code, msg)
	}
	if got := certOf(t, filepath.Join(out, client.CertFile)); got.NotAfter.Sub(got.NotBefore).Hours() < 23 {
		t.Fatalf("--lifetime 1d gave %s", got.NotAfter.Sub(got.NotBefore))
	}

	// A tampered copy of a fresh token: same ID, other names.
	tok2 := c.token(t, "web2", "--san", "localhost")
	bad := tamper(t, tok2, func(m map[string]any) { m["sub"], m["sans"] = "evil.example", []string{"evil.example"} })
	out2 := filepath.Join(work, "host2")
	code, msg := pkiRun(t, c.bin, "bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", bad, "--out", out2)
	if code != 1 || !strings.Contains(msg, "does not verify") {
		t.Fatalf("bootstrap with a tampered token: exit %d\n%s", code, msg)
	}
	// The step CLI does not look: the CA must refuse it before it spends
	// the genuine token's ID.
	env := append(os.Environ(), "STEPPATH="+filepath.Join(work, "step"), "HOME="+work)
	cmd := exec.Command(step, "ca", "certificate", "evil.example", filepath.Join(work, "evil.crt"), filepath.Join(work, "evil.key"),
		"--token", bad, "--ca-url", c.url, "--root", filepath.Join(c.dir, "root_ca.crt"))
	cmd.Env = env
	stepOut, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the CA signed a tampered token:\n%s", stepOut)
	}
	if !strings.Contains(srv.log.String(), "token signature invalid") {
		t.Fatalf("the CA's log does not say why it refused the tampered token (step: %s):\n%s", stepOut, srv.log.String())
	}
	if code, msg := pkiRun(t, c.bin, "bootstrap", "--ca-url", c.url, "--fingerprint", c.fp, "--token", tok2, "--out", out2); code != 0 {
		t.Fatalf("the genuine token after its tampered copy was refused: exit %d\n%s", code, msg)
	}
}
