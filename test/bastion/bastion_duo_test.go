package bastion_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func duoExtra(t testing.TB, apiHost, caFile, ikey, skey string) string {
	skeyFile := filepath.Join(t.TempDir(), "duo.skey")
	if err := os.WriteFile(skeyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`duo:
  integration_key: %s
  secret_key_file: %s
  api_host: %q
  ca_file: %s
  timeout: 3s
  push_timeout: 2s
  poll_interval: 100ms
`, ikey, skeyFile, apiHost, caFile)
}

// TestDuoThroughBastion logs in with OpenSSH against an HTTPS fake of the
// Duo Auth API that checks every request's signature.
func TestDuoThroughBastion(t *testing.T) {
	duo := newDuoFake(t)
	w := bstNewWorld(t, bstSetup{
		Users: []*bstUser{{Name: "pushallow", Factor: "duo"}, {Name: "pushdeny", Factor: "duo"}, {Name: "pushtimeout", Factor: "duo"},
			{Name: "passcode", Factor: "duo"}, {Name: "phoneallow", Factor: "duo"}},
		Extra: duoExtra(t, duo.Host(), duo.CAFile, duo.IKey, duo.SKey),
	})

	t.Run("push approved", func(t *testing.T) {
		r := w.ssh("", "-J", "pushallow@bastion", "target", "echo", "in")
		if r.Err != nil || !strings.Contains(r.Out, "in") {
			t.Fatalf("approved push did not get in: %v\n%s\nprompts: %s", r.Err, r.Out, r.Prompts)
		}
		if !strings.Contains(r.Prompts, "press Enter for a push to test phone") {
			t.Errorf("prompt does not offer the push: %q", r.Prompts)
		}
		if !strings.Contains(r.Out, "Duo push sent") {
			t.Errorf("the client was not told the push was sent:\n%s", r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "pushallow", "method": "duo-push", "result": "success"})
	})
	t.Run("push denied", func(t *testing.T) {
		r := w.ssh("", "-J", "pushdeny@bastion", "target", "echo", "in")
		if r.Err == nil {
			t.Fatalf("denied push got in:\n%s", r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "pushdeny", "method": "duo-push", "result": "failure"})
	})
	t.Run("push timeout", func(t *testing.T) {
		r := w.ssh("", "-J", "pushtimeout@bastion", "target", "echo", "in")
		if r.Err == nil {
			t.Fatalf("unanswered push got in:\n%s", r.Out)
		}
		rec := w.waitRecord(map[string]any{"type": "auth", "user": "pushtimeout", "method": "duo-push", "result": "failure"})
		if !strings.Contains(fmt.Sprint(rec["reason"]), "timed out") {
			t.Errorf("reason: %v", rec["reason"])
		}
	})
	t.Run("passcode", func(t *testing.T) {
		r := w.ssh("7654321", "-J", "passcode@bastion", "target", "echo", "in")
		if r.Err != nil || !strings.Contains(r.Out, "in") {
			t.Fatalf("right passcode did not get in: %v\n%s", r.Err, r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "passcode", "method": "duo-passcode", "result": "success"})
	})
	t.Run("phone call", func(t *testing.T) {
		r := w.ssh("phone", "-J", "phoneallow@bastion", "target", "echo", "in")
		if r.Err != nil || !strings.Contains(r.Out, "in") || !strings.Contains(r.Out, "Duo is calling you") {
			t.Fatalf("phone call: %v\n%s", r.Err, r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "phoneallow", "method": "duo-phone", "result": "success"})
	})
	duo.mu.Lock()
	bad, reqs := duo.BadSigs, strings.Join(duo.Requests, "\n")
	duo.mu.Unlock()
	if bad != 0 {
		t.Errorf("%d requests failed signature verification", bad)
	}
	for _, want := range []string{"POST /auth/v2/preauth pushallow", "POST /auth/v2/auth pushallow push", "GET /auth/v2/auth_status"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("no %q among the requests Duo saw:\n%s", want, reqs)
		}
	}
}

// TestDuoUnreachableFailsSecure: with Duo down, fail_mode secure (the
// default) refuses the login.
func TestDuoUnreachableFailsSecure(t *testing.T) {
	duo := newDuoFake(t)
	host := duo.Host()
	duo.Srv.Close() // nothing listens there any more
	w := bstNewWorld(t, bstSetup{
		Users: []*bstUser{{Name: "duodown", Factor: "duo"}},
		Extra: duoExtra(t, host, duo.CAFile, duo.IKey, duo.SKey),
	})
	r := w.ssh("", "-J", "duodown@bastion", "target", "echo", "in")
	if r.Err == nil || strings.Contains(r.Out, "in\n") {
		t.Fatalf("got in with Duo unreachable: %v\n%s", r.Err, r.Out)
	}
	rec := w.waitRecord(map[string]any{"type": "auth", "user": "duodown", "method": "duo", "result": "failure"})
	if !strings.Contains(fmt.Sprint(rec["reason"]), "fail_mode secure") {
		t.Errorf("reason: %v", rec["reason"])
	}
}

// TestDuoWrongSecretIsRefused: the fake really checks signatures: a
// bastion holding the wrong secret key is refused by "Duo" and, failing
// secure, refuses the user.
func TestDuoWrongSecretIsRefused(t *testing.T) {
	duo := newDuoFake(t)
	w := bstNewWorld(t, bstSetup{
		Users: []*bstUser{{Name: "pushallow", Factor: "duo"}},
		Extra: duoExtra(t, duo.Host(), duo.CAFile, duo.IKey, "not-the-secret"),
	})
	r := w.ssh("", "-J", "pushallow@bastion", "target", "echo", "in")
	if r.Err == nil {
		t.Fatalf("got in with a bad Duo signature:\n%s", r.Out)
	}
	duo.mu.Lock()
	defer duo.mu.Unlock()
	if duo.BadSigs == 0 {
		t.Fatal("the fake accepted a request signed with the wrong key")
	}
}
