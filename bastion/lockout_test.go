package bastion_test

import (
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// TestLockAndUnlockAudited: a locked source is told so in a
// keyboard-interactive instruction, and both the lock and its end are
// audit records.
func TestLockAndUnlockAudited(t *testing.T) {
	w := newWorld(t, "brute_force: {source_threshold: 2, user_threshold: 100, backoff_base: 1ms, backoff_max: 1ms, report_threshold: -1, lockout: 1s}")
	for range 2 {
		w.dial(t, "u8", w.user, func() string { return "000000" })
	}
	if !strings.Contains(w.audit(t), `"method":"lock","result":"failure","reason":"source locked out after 2 failures","fields":{"failures":2,"kind":"source"`) {
		t.Fatalf("lock not audited:\n%s", w.audit(t))
	}
	var told string
	ki := gossh.KeyboardInteractive(func(_, instruction string, questions []string, _ []bool) ([]string, error) {
		told += instruction
		return make([]string, len(questions)), nil
	})
	if _, err := gossh.Dial("tcp", w.addr, &gossh.ClientConfig{User: "u8", Auth: []gossh.AuthMethod{gossh.PublicKeys(w.user), ki},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}); err == nil {
		t.Fatal("a locked source logged in")
	}
	if !strings.Contains(told, "Your address is locked") || strings.Contains(told, "code") {
		t.Errorf("the locked source was told %q", told)
	}
	// The lockout ends; the next login notices and records it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := w.dial(t, "u8", w.user, currentCode)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the lockout: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(w.audit(t), `"method":"unlock","reason":"source lockout ended","fields":{"kind":"source"}`) {
		t.Errorf("unlock not audited:\n%s", w.audit(t))
	}
}
