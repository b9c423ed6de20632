package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// Recovery codes stand in for the second factor once each (a lost phone):
// RecoveryCodes are printed at enrolment and kept only as salted SHA-256
// hashes in DIR/NAME.recovery (0600), one per line after the salt; a used
// code's line is removed before the login is accepted. A code is 80 random
// bits, so a hash cannot be reversed by trying codes.
const (
	RecoveryCodes   = 10
	recoveryLen     = 16 // base32 characters, 80 bits
	recoveryAlpha   = "abcdefghijklmnopqrstuvwxyz234567"
	recoveryPrefix  = "salt "
	recoveryFileExt = ".recovery"
)

// ErrWrongRecovery: not one of the user's unused recovery codes.
var ErrWrongRecovery = errors.New("mfa: wrong or already used recovery code")

// IsRecoveryCode reports whether s is shaped like a recovery code (any
// case, dashes and spaces ignored), so a caller can tell it from a TOTP
// code before checking it.
func IsRecoveryCode(s string) bool {
	_, ok := normalizeRecovery(s)
	return ok
}

func normalizeRecovery(s string) (string, bool) {
	if len(s) > MaxAnswer {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(recoveryAlpha, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	w := b.String()
	if len(w) != recoveryLen {
		return "", false
	}
	return w, true
}

// IssueRecoveryCodes replaces user's recovery codes with n new ones and
// returns them for printing, as xxxx-xxxx-xxxx-xxxx.
func (s *TOTPStore) IssueRecoveryCodes(user string, n int) ([]string, error) {
	p, err := s.path(user, recoveryFileExt)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	var codes []string
	var file strings.Builder
	file.WriteString(recoveryPrefix + hex.EncodeToString(salt) + "\n")
	for range n {
		raw := make([]byte, recoveryLen)
		rand.Read(raw)
		for i := range raw {
			raw[i] = recoveryAlpha[raw[i]%32]
		}
		c := string(raw)
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		file.WriteString(recoveryHash(salt, c) + "\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.WriteFile(p, []byte(file.String()), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, fmt.Errorf("mfa: store recovery codes for %s: %w", user, err)
	}
	return codes, nil
}

func recoveryHash(salt []byte, code string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(code))
	return hex.EncodeToString(h.Sum(nil))
}

// readRecovery returns the salt and the unused hashes.
func (s *TOTPStore) readRecovery(p string) ([]byte, []string, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	saltHex, ok := strings.CutPrefix(lines[0], recoveryPrefix)
	salt, err := hex.DecodeString(saltHex)
	if !ok || err != nil {
		return nil, nil, fmt.Errorf("mfa: %s:1: want %q and a hex salt", p, recoveryPrefix)
	}
	return salt, lines[1:], nil
}

// UseRecoveryCode accepts one of user's unused recovery codes once: the
// code is struck from the file before UseRecoveryCode returns nil. left
// is how many remain.
func (s *TOTPStore) UseRecoveryCode(user, code string) (left int, err error) {
	p, err := s.path(user, recoveryFileExt)
	if err != nil {
		return 0, err
	}
	c, ok := normalizeRecovery(code)
	if !ok {
		return 0, ErrWrongRecovery
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	salt, hashes, err := s.readRecovery(p)
	if err != nil {
		return 0, err
	}
	want := recoveryHash(salt, c)
	match := -1
	for i, h := range hashes {
		if subtle.ConstantTimeCompare([]byte(h), []byte(want)) == 1 {
			match = i
		}
	}
	if match < 0 {
		return len(hashes), ErrWrongRecovery
	}
	rest := append(hashes[:match:match], hashes[match+1:]...)
	out := recoveryPrefix + hex.EncodeToString(salt) + "\n"
	for _, h := range rest {
		out += h + "\n"
	}
	if err := atomicfile.WriteFile(p, []byte(out), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return 0, fmt.Errorf("mfa: strike used recovery code for %s: %w", user, err)
	}
	return len(rest), nil
}

// RecoveryCodesLeft is how many unused recovery codes user has.
func (s *TOTPStore) RecoveryCodesLeft(user string) int {
	p, err := s.path(user, recoveryFileExt)
	if err != nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, hashes, _ := s.readRecovery(p)
	return len(hashes)
}

// Remove deletes everything kept for user: TOTP secret, last step and
// recovery codes.
func (s *TOTPStore) Remove(user string) error {
	if !ValidUserName(user) {
		return fmt.Errorf("mfa: invalid user name %q", user)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ext := range []string{".secret", ".step", recoveryFileExt} {
		if err := os.Remove(filepath.Join(s.dir, user+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mfa: %w", err)
		}
	}
	return nil
}
