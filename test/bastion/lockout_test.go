package bastion_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// wrongKeyFrom offers a key that is not user's to the bastion from a
// loopback source address (ssh -b), as a stranger who knows the name.
func (w *bstWorld) wrongKeyFrom(src, user, keyPath string) string {
	w.t.Helper()
	host, port, _ := net.SplitHostPort(w.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Binary(w.t, "ssh"), "-F", "/dev/null", "-b", src, "-p", port,
		"-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "PreferredAuthentications=publickey", "-o", "LogLevel=ERROR",
		user+"@"+host, "true").CombinedOutput()
	if err == nil {
		w.t.Fatalf("a wrong key from %s logged in as %s:\n%s", src, user, out)
	}
	return string(out)
}

// TestLockoutStrangersCannotTrigger: wrong keys count against their
// source, never the user they name; wrong codes after the user's own key
// lock the user; a locked user or source is told so; every lock is
// audited.
func TestLockoutStrangersCannotTrigger(t *testing.T) {
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	w := bstNewWorld(t, bstSetup{
		Users:   []*bstUser{{Name: "alice"}, {Name: "bob"}, {Name: "carol"}},
		Process: true,
		Extra:   "metrics_listen: " + metrics + "\n",
		BruteForce: `brute_force:
  source_threshold: 3
  user_threshold: 3
  lockout: 10m
  backoff_base: 5ms
  backoff_max: 10ms
  report_threshold: -1`,
	})
	stranger := filepath.Join(w.Dir, "id_stranger")
	bstKey(t, stranger)

	t.Run("wrong keys from 5 addresses do not lock alice", func(t *testing.T) {
		for i := range 5 {
			// Twice from each: below the source threshold, 10 against alice.
			src := fmt.Sprintf("127.0.0.%d", 10+i)
			w.wrongKeyFrom(src, "alice", stranger)
			w.wrongKeyFrom(src, "alice", stranger)
		}
		r := w.ssh(w.totp("alice"), "-b", "127.0.0.1", "-T", "alice@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "-  target") {
			t.Fatalf("alice was locked out by strangers' keys: %v\n%s", r.Err, r.Out)
		}
		if rs := w.find(map[string]any{"method": "lock", "user": "alice"}); len(rs) != 0 {
			t.Fatalf("alice lock recorded: %v", rs)
		}
	})

	t.Run("wrong codes after bob's own key lock bob, and bob is told", func(t *testing.T) {
		for i := range 3 {
			code := w.totp("bob")
			bad := fmt.Sprintf("%06d", (mustAtoi(t, code)+500000)%1000000)
			if r := w.ssh(bad, "-b", fmt.Sprintf("127.0.0.%d", 20+i), "-T", "bob@bastion"); r.Err == nil {
				t.Fatalf("wrong code got in:\n%s", r.Out)
			}
		}
		lock := w.waitRecord(map[string]any{"type": "auth", "method": "lock", "user": "bob"})
		if f, _ := lock["fields"].(map[string]any); f["kind"] != "user" || f["until"] == nil {
			t.Errorf("lock record: %v", lock)
		}
		r := w.ssh(w.totp("bob"), "-b", "127.0.0.24", "-T", "bob@bastion")
		if r.Err == nil || strings.Contains(r.Out, "-  target") {
			t.Fatalf("locked bob got in: %v\n%s", r.Err, r.Out)
		}
		if !strings.Contains(r.Out, "This account is locked") || strings.Contains(strings.ToLower(r.Out), "code") {
			t.Fatalf("bob is not told he is locked, or is told which factor failed:\n%s", r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "bob", "method": "keyboard-interactive", "reason": "user locked out after repeated failures"})
	})

	t.Run("a locked source is told so; its users are not locked", func(t *testing.T) {
		for range 3 {
			w.wrongKeyFrom("127.0.0.30", "carol", stranger)
		}
		lock := w.waitRecord(map[string]any{"type": "auth", "method": "lock", "source": "127.0.0.30"})
		if f, _ := lock["fields"].(map[string]any); f["kind"] != "source" {
			t.Errorf("lock record: %v", lock)
		}
		r := w.ssh(w.totp("carol"), "-b", "127.0.0.30", "-T", "carol@bastion")
		if r.Err == nil || strings.Contains(r.Out, "-  target") {
			t.Fatalf("locked source got in: %v\n%s", r.Err, r.Out)
		}
		if !strings.Contains(r.Out, "Your address is locked") {
			t.Fatalf("the locked source is not told:\n%s", r.Out)
		}
		r = w.ssh(w.totp("carol"), "-b", "127.0.0.31", "-T", "carol@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "-  target") {
			t.Fatalf("carol from another address: %v\n%s", r.Err, r.Out)
		}
	})

	t.Run("every lock is a metric", func(t *testing.T) {
		testenv.WaitTCP(t, "bastion metrics", metrics, 10*time.Second)
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`rampart_bastion_lockout_events_total{event="lock",kind="source"} 1`,
			`rampart_bastion_lockout_events_total{event="lock",kind="user"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(string(body), "lockout"))
			}
		}
	})
	w.verifyAudit()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
