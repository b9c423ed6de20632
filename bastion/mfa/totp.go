// Package mfa holds the bastion's second factors: TOTP (RFC 6238) with
// secrets kept in 0600 files and a per-user record of the last accepted
// time step so a code is never accepted twice, and Duo through the Auth
// API v2 (preauth, then push, passcode or phone call). It also parses what
// people type at a keyboard-interactive prompt ([ParseAnswer]).
package mfa

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// TOTP parameters: the RFC 6238 defaults every phone authenticator speaks.
const (
	Period = 30
	Digits = 6
	Skew   = 1 // steps accepted either side of now
)

// Errors a caller branches on.
var (
	ErrNoSecret  = errors.New("mfa: no TOTP secret enrolled")
	ErrWrongCode = errors.New("mfa: wrong code")
	ErrReplayed  = errors.New("mfa: code already used")
)

var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,63}$`)

// ValidUserName reports whether name is safe as a user name and a file name.
func ValidUserName(name string) bool { return userNameRE.MatchString(name) }

// TOTPStore keeps secrets as DIR/NAME.secret (base32, mode 0600) and the
// last accepted step as DIR/NAME.step. It is safe for concurrent use within
// one process; one bastion process owns the directory.
type TOTPStore struct {
	dir string
	now func() time.Time
	mu  sync.Mutex
}

// NewTOTPStore uses dir, creating it 0700.
func NewTOTPStore(dir string, now func() time.Time) (*TOTPStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mfa: totp directory %s: %w", dir, err)
	}
	if now == nil {
		now = time.Now
	}
	return &TOTPStore{dir: dir, now: now}, nil
}

func (s *TOTPStore) path(user, ext string) (string, error) {
	if !ValidUserName(user) {
		return "", fmt.Errorf("mfa: invalid user name %q", user)
	}
	return filepath.Join(s.dir, user+ext), nil
}

// Enroll generates a new secret for user, stores it and returns the key
// (its URL() is the otpauth:// URI for a phone authenticator).
func (s *TOTPStore) Enroll(issuer, user string) (*otp.Key, error) {
	p, err := s.path(user, ".secret")
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: user, Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("mfa: generate TOTP secret: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.WriteFile(p, []byte(key.Secret()+"\n"), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return nil, fmt.Errorf("mfa: store TOTP secret for %s: %w", user, err)
	}
	os.Remove(filepath.Join(s.dir, user+".step"))
	return key, nil
}

// SetSecret stores a given base32 secret (imports, demos, tests).
func (s *TOTPStore) SetSecret(user, secret string) error {
	p, err := s.path(user, ".secret")
	if err != nil {
		return err
	}
	secret = strings.ToUpper(strings.TrimSpace(secret))
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(secret, "=")); err != nil {
		return fmt.Errorf("mfa: TOTP secret for %s is not base32: %w", user, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return atomicfile.WriteFile(p, []byte(secret+"\n"), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
}

// Has reports whether user has a secret.
func (s *TOTPStore) Has(user string) bool {
	p, err := s.path(user, ".secret")
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

func (s *TOTPStore) secret(user string) (string, error) {
	p, err := s.path(user, ".secret")
	if err != nil {
		return "", err
	}
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoSecret
	}
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("mfa: %s is readable by others (mode %v); chmod 600 it", p, st.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s *TOTPStore) lastStep(user string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, user+".step"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mfa: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("mfa: %s.step: %w", user, err)
	}
	return n, nil
}

// Check verifies code for user at the current time. A code is accepted
// for the current step or one step either side, only if that step is later
// than the last step accepted for user; the step is persisted before
// Check returns nil, so a code is never accepted twice, even across
// restarts.
func (s *TOTPStore) Check(user, code string) error {
	secret, err := s.secret(user)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, err := s.lastStep(user)
	if err != nil {
		return err
	}
	now := uint64(s.now().Unix()) / Period
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	matched, replayed := uint64(0), false
	for step := now - Skew; step <= now+Skew; step++ {
		want, err := hotp.GenerateCodeCustom(secret, step, opts)
		if err != nil {
			return fmt.Errorf("mfa: TOTP secret for %s: %w", user, err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if step <= last {
				replayed = true
				continue
			}
			matched = step
		}
	}
	if matched == 0 {
		if replayed {
			return ErrReplayed
		}
		return ErrWrongCode
	}
	p := filepath.Join(s.dir, user+".step")
	if err := atomicfile.WriteFile(p, []byte(strconv.FormatUint(matched, 10)+"\n"), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("mfa: record used TOTP step for %s: %w", user, err)
	}
	return nil
}
