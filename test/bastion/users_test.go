package bastion_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// bastionCLI runs the real binary's verbs against the world's config.
func (w *bstWorld) bastionCLI(bin string, args ...string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--config", filepath.Join(w.Dir, "bastion.yaml"))
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		w.t.Fatalf("bastion %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var (
	otpSecretRE = regexp.MustCompile(`otpauth://totp/[^ ]*[?&]secret=([A-Z2-7]+)`)
	recoveryRE  = regexp.MustCompile(`(?m)^  ([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})$`)
)

// enrolled reads the TOTP secret and recovery codes "user add" printed.
func (w *bstWorld) enrolled(name, out string) []string {
	w.t.Helper()
	m := otpSecretRE.FindStringSubmatch(out)
	if m == nil {
		w.t.Fatalf("no otpauth secret in:\n%s", out)
	}
	w.users[name] = &bstUser{Name: name, Secret: m[1]}
	var codes []string
	for _, c := range recoveryRE.FindAllStringSubmatch(out, -1) {
		codes = append(codes, c[1])
	}
	if len(codes) != 10 {
		w.t.Fatalf("%d recovery codes in:\n%s", len(codes), out)
	}
	return codes
}

// eventually retries login until ok says it did what the running server
// should do once it has picked up a change (it polls every 2 s).
func (w *bstWorld) eventually(what string, answer func() string, ok func(sshResult) bool, user string, sshArgs ...string) sshResult {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := w.ssh(answer(), append(sshArgs, "-T", user+"@bastion")...)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(w.AuditPath)
			w.t.Fatalf("%s: not within 20s: %v\n%s\naudit:\n%s", what, r.Err, r.Out, data)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func loggedIn(r sshResult) bool { return r.Err == nil && strings.Contains(r.Out, "-  target") }

// TestUserLifecycleWithoutRestart: "bastion user" verbs against a running
// "bastion serve", which applies each without a restart or a signal.
func TestUserLifecycleWithoutRestart(t *testing.T) {
	w := bstNewWorld(t, bstSetup{Users: []*bstUser{{Name: "main"}}, Process: true})
	pub := w.KeyPath + ".pub"
	bin := testenv.BuildCommand(t, "bastion")

	codes := w.enrolled("alice", w.bastionCLI(bin, "user", "add", "alice", "--key", pub, "--totp", "--target", "target", "--no-qr"))
	w.eventually("a user added while serving logs in", func() string { return w.totp("alice") }, loggedIn, "alice")

	w.bastionCLI(bin, "user", "disable", "alice")
	// Until the server has noticed, alice still logs in: answer nonsense
	// so no code is spent.
	w.eventually("a disabled user is refused", func() string { return "nonsense" }, func(r sshResult) bool {
		return r.Err != nil && len(w.find(map[string]any{"user": "alice", "method": "publickey", "reason": "user disabled"})) > 0
	}, "alice")

	w.bastionCLI(bin, "user", "enable", "alice")
	w.eventually("an enabled user logs in with a recovery code", func() string { return codes[0] }, loggedIn, "alice")
	rec := w.waitRecord(map[string]any{"user": "alice", "method": "recovery-code", "result": "success"})
	if !strings.Contains(rec["reason"].(string), "9 left") {
		t.Errorf("recovery record: %v", rec)
	}
	if r := w.ssh(codes[0], "-T", "alice@bastion"); loggedIn(r) {
		t.Fatalf("a recovery code worked twice:\n%s", r.Out)
	}
	w.waitRecord(map[string]any{"user": "alice", "method": "recovery-code", "result": "failure"})

	old := w.users["alice"].Secret
	fresh := w.enrolled("alice", w.bastionCLI(bin, "user", "reset-totp", "alice", "--no-qr"))
	if w.users["alice"].Secret == old {
		t.Fatal("reset-totp kept the secret")
	}
	if r := w.ssh(codes[1], "-T", "alice@bastion"); loggedIn(r) {
		t.Fatal("a recovery code from before reset-totp still works")
	}
	if r := w.ssh(w.totp("alice"), "-T", "alice@bastion"); !loggedIn(r) {
		t.Fatalf("the new secret does not log in: %v\n%s", r.Err, r.Out)
	}

	// Re-enrolment of a user it added (a lost phone): only with --force.
	w.enrolled("alice", w.bastionCLI(bin, "user", "add", "alice", "--key", pub, "--totp", "--target", "target", "--no-qr", "--force"))
	if r := w.ssh(fresh[0], "-T", "alice@bastion"); loggedIn(r) {
		t.Fatal("a recovery code from before the re-enrolment still works")
	}

	w.bastionCLI(bin, "user", "remove", "alice")
	w.eventually("a removed user is refused", func() string { return w.totp("alice") }, func(r sshResult) bool {
		return r.Err != nil && len(w.find(map[string]any{"user": "alice", "method": "publickey", "reason": "unknown user"})) > 0
	}, "alice")
	if out := w.bastionCLI(bin, "user", "list"); strings.Contains(out, "alice") || !strings.Contains(out, "main") {
		t.Errorf("user list after remove:\n%s", out)
	}
	w.verifyAudit()
}
