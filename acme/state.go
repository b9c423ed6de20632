package acme

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// stateVersion is bumped when the state file changes incompatibly.
const stateVersion = 1

// State is what acme-renew remembers between runs, one small JSON file in
// the state directory: the CA's renewal window per certificate and the
// failure history. Losing it is harmless (the next run asks the CA again);
// certificates themselves are always read from disk.
type State struct {
	Version      int                   `json:"version"`
	Certificates map[string]*CertState `json:"certificates"`
}

// CertState is the memory of one certificate.
type CertState struct {
	// ARI is the CA's last renewal information for the certificate on disk.
	ARI *ARIState `json:"ari,omitempty"`
	// NoARI records that the CA offers no renewal information, so the
	// lifetime rule applies without asking.
	NoARI bool `json:"no_ari,omitempty"`

	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Failures counts consecutive failed attempts; NextAttempt is when the
	// backoff they earned ends.
	Failures    int       `json:"failures,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// HookPending is true while deploy hooks are owed for the certificate
	// on disk (one failed, or a run died before they all ran); the next
	// run runs the owed ones. It mirrors Deploy for older readers and the
	// metric.
	HookPending bool `json:"hook_pending,omitempty"`
	// Deploy is the write-ahead record of a deployment: saved, fsynced,
	// before the new certificate is switched in, and cleared only once
	// every deploy hook succeeded for it. A run killed at any point leaves
	// it behind, so the next run finds the hooks still owed.
	Deploy *DeployState `json:"deploy,omitempty"`
	// Deployed is the SHA-256 of the certificate whose deploy hooks all
	// succeeded. A certificate on disk that is neither this one nor
	// Deploy's is owed its hooks too (it was changed behind our back).
	Deployed string `json:"deployed,omitempty"`
	// IssuedBy says which CA directory and account issued the certificate
	// Cert; ARI "replaces" is only sent to that CA.
	IssuedBy *IssuedBy `json:"issued_by,omitempty"`
	// ConfigHash identifies the certificate's settings at the last
	// attempt; a backoff earned under other settings does not hold.
	ConfigHash string `json:"config_hash,omitempty"`
}

// DeployState is a deployment in progress: the deploy hooks owed for one
// certificate, and those that already succeeded for it (by command line),
// which are not run again.
type DeployState struct {
	Cert string   `json:"cert"` // SHA-256 of the certificate, hex
	Done []string `json:"done,omitempty"`
}

// IssuedBy records where a certificate came from.
type IssuedBy struct {
	Cert      string `json:"cert"` // SHA-256 of the certificate, hex
	Directory string `json:"directory"`
	Account   string `json:"account"` // the account URL at that CA
}

// ARIState is one answer of the CA's renewalInfo endpoint (RFC 9773).
type ARIState struct {
	CertID string `json:"cert_id"` // RFC 9773 identifier of the certificate it is about
	// Directory is the CA that answered; a window from another CA is
	// never used for "replaces".
	Directory   string    `json:"directory,omitempty"`
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
	// RenewAt is drawn once, uniformly within the window, as RFC 9773
	// recommends, so that every run agrees on it.
	RenewAt time.Time `json:"renew_at,omitzero"`
	// NextCheck is when the CA may be asked again (its Retry-After).
	NextCheck      time.Time `json:"next_check"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
}

// ParseState decodes a state file. Unknown fields are rejected so that an
// older binary never silently drops what a newer one recorded.
func ParseState(data []byte) (*State, error) {
	s := &State{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if dec.More() {
		return nil, errors.New("state: trailing data after the JSON object")
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state: version %d, this acme-renew understands %d", s.Version, stateVersion)
	}
	if s.Certificates == nil {
		s.Certificates = map[string]*CertState{}
	}
	for name, cs := range s.Certificates {
		if cs == nil {
			return nil, fmt.Errorf("state: certificate %q: null entry", name)
		}
		if cs.Failures < 0 {
			return nil, fmt.Errorf("state: certificate %q: negative failure count", name)
		}
		if a := cs.ARI; a != nil && a.WindowEnd.Before(a.WindowStart) {
			return nil, fmt.Errorf("state: certificate %q: ARI window ends before it starts", name)
		}
	}
	return s, nil
}

// LoadState reads the state file at path; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: stateVersion, Certificates: map[string]*CertState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	s, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Save writes the state atomically.
func (s *State) Save(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'), atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
}

// cert returns the entry for name, creating it.
func (s *State) cert(name string) *CertState {
	cs := s.Certificates[name]
	if cs == nil {
		cs = &CertState{}
		s.Certificates[name] = cs
	}
	return cs
}

// clone deep-copies a CertState so workers never share one with the saver.
func (cs *CertState) clone() *CertState {
	c := *cs
	if cs.ARI != nil {
		a := *cs.ARI
		c.ARI = &a
	}
	if cs.Deploy != nil {
		d := DeployState{Cert: cs.Deploy.Cert, Done: slices.Clone(cs.Deploy.Done)}
		c.Deploy = &d
	}
	if cs.IssuedBy != nil {
		i := *cs.IssuedBy
		c.IssuedBy = &i
	}
	return &c
}
