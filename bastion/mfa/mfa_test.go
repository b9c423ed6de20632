package mfa_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/rampart-sec/rampart/bastion/mfa"
)

const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

func code(t *testing.T, at time.Time) string {
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPWindowAndReplay(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 15, 0, time.UTC)
	dir := t.TempDir()
	s, err := mfa.NewTOTPStore(dir, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret("alice", secret); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		at   time.Time
		want error
	}{
		{"two steps ago", now.Add(-60 * time.Second), mfa.ErrWrongCode},
		{"previous step", now.Add(-30 * time.Second), nil},
		{"previous step again", now.Add(-30 * time.Second), mfa.ErrReplayed},
		{"current step", now, nil},
		{"current step again", now, mfa.ErrReplayed},
		{"previous step after current", now.Add(-30 * time.Second), mfa.ErrReplayed},
		{"next step", now.Add(30 * time.Second), nil},
		{"two steps ahead", now.Add(60 * time.Second), mfa.ErrWrongCode},
	}
	for _, st := range steps {
		if err := s.Check("alice", code(t, st.at)); !errors.Is(err, st.want) {
			t.Errorf("%s: Check = %v, want %v", st.name, err, st.want)
		}
	}
	// The last used step survives a restart.
	s2, _ := mfa.NewTOTPStore(dir, func() time.Time { return now.Add(30 * time.Second) })
	if err := s2.Check("alice", code(t, now.Add(30*time.Second))); !errors.Is(err, mfa.ErrReplayed) {
		t.Errorf("after restart: %v, want ErrReplayed", err)
	}
}

func TestTOTPSecretMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	s, _ := mfa.NewTOTPStore(dir, nil)
	s.SetSecret("alice", secret)
	if st, _ := os.Stat(filepath.Join(dir, "alice.secret")); st.Mode().Perm() != 0o600 {
		t.Fatalf("secret stored with mode %v", st.Mode().Perm())
	}
	os.Chmod(filepath.Join(dir, "alice.secret"), 0o644)
	if err := s.Check("alice", "123456"); err == nil || errors.Is(err, mfa.ErrWrongCode) {
		t.Fatalf("a world-readable secret was used: %v", err)
	}
	if err := s.Check("bob", "123456"); !errors.Is(err, mfa.ErrNoSecret) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := s.Check("../etc/passwd", "123456"); err == nil {
		t.Fatal("path-like user name accepted")
	}
}

func TestEnrollGivesAWorkingURI(t *testing.T) {
	s, _ := mfa.NewTOTPStore(t.TempDir(), nil)
	key, err := s.Enroll("Rampart", "alice")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := totp.GenerateCode(key.Secret(), time.Now())
	if err := s.Check("alice", c); err != nil {
		t.Fatalf("code from the enrolled secret: %v", err)
	}
	if key.Issuer() != "Rampart" || key.AccountName() != "alice" || key.Period() != 30 {
		t.Errorf("key: %s", key.URL())
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in   string
		want mfa.Answer
	}{
		{"123456", mfa.Answer{Kind: mfa.AnswerCode, Code: "123456"}},
		{" 123 456 ", mfa.Answer{Kind: mfa.AnswerCode, Code: "123456"}},
		{"123-456\r\n", mfa.Answer{Kind: mfa.AnswerCode, Code: "123456"}},
		{"1234567", mfa.Answer{Kind: mfa.AnswerCode, Code: "1234567"}},
		{"", mfa.Answer{Kind: mfa.AnswerPush}},
		{"Push", mfa.Answer{Kind: mfa.AnswerPush}},
		{"phone", mfa.Answer{Kind: mfa.AnswerPhone}},
		{"12345", mfa.Answer{}},
		{"123456789", mfa.Answer{}},
		{"12345a", mfa.Answer{}},
		{"١٢٣٤٥٦", mfa.Answer{}}, // Arabic-Indic digits are not ASCII digits
		{"123456\x00", mfa.Answer{}},
		{string(make([]byte, 100)), mfa.Answer{}},
	}
	for _, tt := range tests {
		if got := mfa.ParseAnswer(tt.in); got != tt.want {
			t.Errorf("ParseAnswer(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// FuzzParseAnswer: whatever a client sends as a keyboard-interactive
// answer, the result is well formed: a code is 6 to 8 ASCII digits and
// nothing else carries a code.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"123456", " 12 34 56 ", "push", "PHONE", "", "\xff\xfe", "1234567890123", "12\x0034"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := mfa.ParseAnswer(s)
		switch a.Kind {
		case mfa.AnswerCode:
			if len(a.Code) < 6 || len(a.Code) > 8 {
				t.Fatalf("code %q of length %d", a.Code, len(a.Code))
			}
			for _, r := range a.Code {
				if r < '0' || r > '9' {
					t.Fatalf("code %q holds %q", a.Code, r)
				}
			}
		case mfa.AnswerInvalid, mfa.AnswerPush, mfa.AnswerPhone:
			if a.Code != "" {
				t.Fatalf("kind %v carries code %q", a.Kind, a.Code)
			}
		default:
			t.Fatalf("unknown kind %v", a.Kind)
		}
		if len(s) > mfa.MaxAnswer && a.Kind != mfa.AnswerInvalid {
			t.Fatalf("over-long answer accepted: %d bytes", len(s))
		}
	})
}

// FuzzTOTPCheck: any answer string against a real store never panics and
// is accepted only if it is the code of an allowed step.
func FuzzTOTPCheck(f *testing.F) {
	now := time.Date(2026, 11, 22, 4, 0, 15, 0, time.UTC)
	dir := f.TempDir()
	s, _ := mfa.NewTOTPStore(dir, func() time.Time { return now })
	s.SetSecret("alice", secret)
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, _ := totp.GenerateCode(secret, now.Add(d))
		valid[c] = true
	}
	f.Add("000000")
	f.Add("99999999")
	f.Add("")
	f.Fuzz(func(t *testing.T, ans string) {
		a := mfa.ParseAnswer(ans)
		if a.Kind != mfa.AnswerCode {
			return
		}
		err := s.Check("alice", a.Code)
		if err == nil && !valid[a.Code] {
			t.Fatalf("accepted %q, which is no valid code", a.Code)
		}
	})
}
