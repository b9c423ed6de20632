package bastion_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/test/testenv"
)

// TestOpenSSHThroughBastion drives the real OpenSSH client through the
// bastion to a real sshd. Each case logs in as its own user, so the
// one-use TOTP codes of one case never collide with another's.
func TestOpenSSHThroughBastion(t *testing.T) {
	other := testenv.StartSSHD(t, testenv.SSHDOptions{})
	w := bstNewWorld(t, bstSetup{Users: []*bstUser{
		{Name: "keyonly"}, {Name: "wrong"}, {Name: "replay"}, {Name: "alice"}, {Name: "outside"}, {Name: "fwd"}, {Name: "menu"}, {Name: "menutty"},
	}})

	t.Run("key only is refused", func(t *testing.T) {
		// Options given with -o do not reach a -J hop, so log in to the
		// bastion itself, offering nothing but the key.
		r := w.ssh("", "-o", "PreferredAuthentications=publickey", "keyonly@bastion", "target")
		if r.Err == nil || !strings.Contains(r.Out, "Permission denied (keyboard-interactive)") {
			t.Fatalf("a key alone was not refused as expected: %v\n%s", r.Err, r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "keyonly", "method": "publickey", "result": "success", "reason": "key verified; second factor required"})
		if rs := w.find(map[string]any{"user": "keyonly", "method": "totp"}); len(rs) != 0 {
			t.Fatalf("second factor recorded without being asked: %v", rs)
		}
		if rs := w.find(map[string]any{"type": "jump", "user": "keyonly"}); len(rs) != 0 {
			t.Fatalf("jump recorded for a key-only login: %v", rs)
		}
	})

	t.Run("key and wrong TOTP is refused", func(t *testing.T) {
		code := w.totp("wrong")
		bad := fmt.Sprintf("%06d", (mustAtoi(t, code)+500000)%1000000)
		r := w.ssh(bad, "-J", "wrong@bastion", "target", "echo", "in")
		if r.Err == nil || strings.Contains(r.Out, "in\n") {
			t.Fatalf("wrong code got in: %v\n%s", r.Err, r.Out)
		}
		if !strings.Contains(r.Prompts, "Rampart bastion code") {
			t.Fatalf("askpass was not asked for a code; prompts: %q", r.Prompts)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "wrong", "method": "totp", "result": "failure", "reason": "mfa: wrong code"})
	})

	t.Run("replayed TOTP is refused", func(t *testing.T) {
		code := w.totp("replay")
		if r := w.ssh(code, "-J", "replay@bastion", "target", "echo", "first"); r.Err != nil || !strings.Contains(r.Out, "first") {
			t.Fatalf("first login failed: %v\n%s", r.Err, r.Out)
		}
		r := w.ssh(code, "-J", "replay@bastion", "target", "echo", "second")
		if r.Err == nil || strings.Contains(r.Out, "second") {
			t.Fatalf("replayed code got in: %v\n%s", r.Err, r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "replay", "method": "totp", "result": "failure", "reason": "mfa: code already used"})
	})

	t.Run("key and TOTP: the jump works", func(t *testing.T) {
		r := w.ssh(w.totp("alice"), "-J", "alice@bastion", "target", "echo", "jumped", "&&", "id", "-un")
		if r.Err != nil || !strings.Contains(r.Out, "jumped\n"+w.TargetUser) {
			t.Fatalf("jump failed: %v\n%s\nprompts: %s", r.Err, r.Out, r.Prompts)
		}
		j := w.waitRecord(map[string]any{"type": "jump", "user": "alice", "result": "success"})
		if j["target"] != "target" && !strings.Contains(fmt.Sprint(j["fields"]), w.Target.Addr) {
			t.Errorf("jump record target: %v", j)
		}
		if in, _ := j["bytes_in"].(float64); in <= 0 {
			t.Errorf("jump record has no bytes_in: %v", j)
		}
		if out, _ := j["bytes_out"].(float64); out <= 0 {
			t.Errorf("jump record has no bytes_out: %v", j)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "alice", "method": "totp", "result": "success"})
	})

	t.Run("target outside the list is refused", func(t *testing.T) {
		host, port, _ := strings.Cut(other.Addr, ":")
		r := w.ssh(w.totp("outside"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-J", "outside@bastion", "-p", port, w.TargetUser+"@"+host, "echo", "in")
		if r.Err == nil || strings.Contains(r.Out, "in\n") {
			t.Fatalf("reached a host outside the list: %v\n%s", r.Err, r.Out)
		}
		w.waitRecord(map[string]any{"type": "auth", "user": "outside", "method": "totp", "result": "success"})
		w.waitRecord(map[string]any{"type": "refusal", "user": "outside", "method": "jump"})
	})

	t.Run("remote forwarding is refused and audited", func(t *testing.T) {
		r := w.ssh(w.totp("fwd"), "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "-N", "fwd@bastion")
		if r.Err == nil {
			t.Fatalf("remote forwarding accepted:\n%s", r.Out)
		}
		w.waitRecord(map[string]any{"type": "refusal", "user": "fwd", "method": "remote-forwarding"})
	})

	t.Run("menu without a terminal lists the targets", func(t *testing.T) {
		r := w.ssh(w.totp("menu"), "-T", "menu@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "-  target") {
			t.Fatalf("menu: %v\n%s", r.Err, r.Out)
		}
	})

	t.Run("menu on a terminal offers no jump-only target as a choice", func(t *testing.T) {
		// -tt: a pseudo-terminal even though stdin is a pipe, as a phone
		// client has one. target is jump-only: listed as such, and with
		// nothing to pick here there is no number prompt to fail at.
		r := w.sshStdin("1\r\x04", w.totp("menutty"), "-tt", "menutty@bastion")
		for _, want := range []string{"Jump only (ssh -J from a computer)", "-  target"} {
			if !strings.Contains(r.Out, want) {
				t.Errorf("menu output lacks %q: %v\n%s", want, r.Err, r.Out)
			}
		}
		if strings.Contains(r.Out, "Number (q to quit)") || strings.Contains(r.Out, "1) target") {
			t.Errorf("a jump-only target offered as a choice:\n%s", r.Out)
		}
	})

	n := w.verifyAudit()
	if n < 10 {
		t.Errorf("audit chain holds only %d records", n)
	}

	t.Run("a tampered audit line is found", func(t *testing.T) {
		data, err := os.ReadFile(w.AuditPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		// Hide the refused key-only login: turn its record into a success.
		victim := -1
		for i, l := range lines {
			if strings.Contains(l, `"user":"wrong"`) && strings.Contains(l, `"result":"failure"`) {
				victim = i
				break
			}
		}
		if victim < 0 {
			t.Fatal("no failure record to tamper with")
		}
		lines[victim] = strings.Replace(lines[victim], `"result":"failure"`, `"result":"success"`, 1)
		_, err = audit.Verify(strings.NewReader(strings.Join(lines, "\n")))
		var bad *audit.BadRecordError
		if !errors.As(err, &bad) || bad.Line != victim+1 {
			t.Fatalf("Verify = %v, want the bad record at line %d", err, victim+1)
		}
	})
}

func mustAtoi(t testing.TB, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
