package mfa_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion/mfa"
)

func TestRecoveryCodesEachUsableOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := mfa.NewTOTPStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := s.IssueRecoveryCodes("alice", mfa.RecoveryCodes)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != mfa.RecoveryCodes {
		t.Fatalf("%d codes", len(codes))
	}
	data, _ := os.ReadFile(filepath.Join(dir, "alice.recovery"))
	st, _ := os.Stat(filepath.Join(dir, "alice.recovery"))
	for _, c := range codes {
		if !mfa.IsRecoveryCode(c) || mfa.IsRecoveryCode(strings.ReplaceAll(c, "-", "")[:15]) {
			t.Fatalf("%q: shape not recognised", c)
		}
		if strings.Contains(string(data), strings.ReplaceAll(c, "-", "")) {
			t.Fatalf("code %s stored in clear", c)
		}
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("recovery file mode %v", st.Mode().Perm())
	}
	// Typed from a phone: upper case, spaces instead of dashes.
	left, err := s.UseRecoveryCode("alice", strings.ToUpper(strings.ReplaceAll(codes[3], "-", " ")))
	if err != nil || left != mfa.RecoveryCodes-1 {
		t.Fatalf("first use: left %d, %v", left, err)
	}
	if _, err := s.UseRecoveryCode("alice", codes[3]); !errors.Is(err, mfa.ErrWrongRecovery) {
		t.Fatalf("second use of the same code: %v", err)
	}
	if _, err := s.UseRecoveryCode("bob", codes[4]); !errors.Is(err, mfa.ErrWrongRecovery) {
		t.Fatalf("alice's code for bob: %v", err)
	}
	for i, c := range codes {
		if i == 3 {
			continue
		}
		if _, err := s.UseRecoveryCode("alice", c); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	if n := s.RecoveryCodesLeft("alice"); n != 0 {
		t.Fatalf("%d left after using all", n)
	}
	// New codes replace the old ones.
	fresh, _ := s.IssueRecoveryCodes("alice", 2)
	if _, err := s.UseRecoveryCode("alice", codes[0]); !errors.Is(err, mfa.ErrWrongRecovery) {
		t.Fatal("an old code survived reissuing")
	}
	if _, err := s.UseRecoveryCode("alice", fresh[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseRecoveryCode("alice", fresh[0]); !errors.Is(err, mfa.ErrWrongRecovery) {
		t.Fatal("a code survived Remove")
	}
}

// FuzzRecoveryAnswer: whatever is typed at the prompt, the recovery-code
// check does not panic, accepts only one of the issued codes (in any case
// and spacing) and accepts each once.
func FuzzRecoveryAnswer(f *testing.F) {
	f.Add("abcd-efgh-ijkl-mnop")
	f.Add("ABCD EFGH IJKL MNOP")
	f.Add("123456")
	f.Add("\x00\xff-----")
	s, err := mfa.NewTOTPStore(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	codes, err := s.IssueRecoveryCodes("fuzz", 3)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range codes {
		f.Add(c)
	}
	issued := map[string]bool{}
	for _, c := range codes {
		issued[strings.ReplaceAll(c, "-", "")] = true
	}
	f.Fuzz(func(t *testing.T, answer string) {
		if mfa.IsRecoveryCode(answer) && len(answer) > mfa.MaxAnswer {
			t.Fatalf("an answer of %d bytes passes as a recovery code", len(answer))
		}
		_, err := s.UseRecoveryCode("fuzz", answer)
		if err != nil {
			return
		}
		norm := strings.NewReplacer("-", "", " ", "").Replace(strings.ToLower(answer))
		if !issued[norm] {
			t.Fatalf("%q accepted but is none of the issued codes", answer)
		}
		delete(issued, norm)
		// Issued again so the next inputs still have codes to find.
		fresh, err := s.IssueRecoveryCodes("fuzz", 3)
		if err != nil {
			t.Fatal(err)
		}
		issued = map[string]bool{}
		for _, c := range fresh {
			issued[strings.ReplaceAll(c, "-", "")] = true
		}
	})
}
