// Package recorded is the bastion's recording proxy: it ends the user's SSH
// session at the bastion, opens its own SSH connection to the target with a
// short-lived user certificate, relays the session both ways and records it.
//
// # How the pieces fit
//
// The bastion server (package bastion) authenticates the user, decides that
// a target is recorded, and hands the gliderlabs session to [Proxy.Serve]
// together with the user name and a [Target]. Serve then
//
//   - signs a certificate for a fresh ed25519 key with [Options.UserCA],
//     valid for [Options.CertTTL], principal the remote login, KeyId naming
//     the session;
//   - dials the target and accepts its host key only if it is a host
//     certificate signed by [Target.HostCA] for the target's host name, or one
//     of [Target.HostKeys]; anything else is refused and audited;
//   - relays the target's own keyboard-interactive prompts to the user's
//     terminal (never recorded);
//   - passes through pty-req, window-change, allowlisted env (LANG, LC_*,
//     TERM), shell, exec, the sftp subsystem, signals, break, exit-status and
//     exit-signal;
//   - records shell and exec sessions as asciicast v2 files in
//     [Options.Dir] (package [github.com/rampart-sec/rampart/bastion/recorded/asciicast]),
//     and sftp and scp sessions as file-transfer audit events plus a
//     transfer log (ID.transfers.cast, one marker per file operation) so
//     that [List] shows them too;
//   - sends the recording's SHA-256 to [Options.Audit] when the session ends.
//
// # Never a silent gap
//
// If a recording cannot be started (disk full, unwritable directory) the
// session is refused under the default [Refuse] policy; if it fails midway
// the session is terminated. [Allow] lets the session run unrecorded, but
// audits the gap; the transfer log of an sftp or scp session counts as a
// recording here. A live session is marked by ID.live beside its file,
// locked with flock by the process that records it: [List] tells live,
// ended and interrupted (the recorder died) sessions apart.
//
// Terminal modes are not relayed: gliderlabs/ssh does not expose the
// client's modes, so the target's pty starts with its defaults.
package recorded

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"
)

// Target is an SSH server reached through the recording proxy.
type Target struct {
	// Name is the target's name in the bastion config, shown in recordings.
	Name string
	// Addr is host:port to dial.
	Addr string
	// User is the login on the target; empty means the bastion user.
	User string
	// HostKeys are pinned host keys, accepted as they are.
	HostKeys []gossh.PublicKey
	// HostCA, when set, accepts host certificates it signed whose principals
	// include the host part of Addr or Name.
	HostCA gossh.PublicKey
}

// FailurePolicy says what happens when a session cannot be recorded.
type FailurePolicy string

const (
	// Refuse refuses new sessions and terminates running ones whose
	// recording fails. The default.
	Refuse FailurePolicy = "refuse"
	// Allow lets sessions run unrecorded, with an audit event for the gap.
	Allow FailurePolicy = "allow"
)

// Retention limits what the recordings directory keeps. Zero fields mean
// no limit. Live recordings are never pruned.
type Retention struct {
	// MaxBytes bounds the total size of all recordings; the oldest go first.
	MaxBytes int64
	// MaxAge removes recordings last written longer ago than this.
	MaxAge time.Duration
}

// Options configures a [Proxy].
type Options struct {
	// Dir holds the recordings; created 0700 if missing. Required.
	Dir string
	// UserCA signs the short-lived user certificates. Required.
	UserCA gossh.Signer
	// CertTTL is how long a certificate is valid; 0 means 5 minutes.
	// It only has to outlive the login, not the session.
	CertTTL time.Duration
	// Audit receives every audit event (see the Event* constants); nil
	// drops them, which only makes sense in tests.
	Audit func(event string, fields map[string]any)
	// Logger logs operational detail; nil discards.
	Logger *slog.Logger
	// RecordInput records keystrokes as "i" events. Off by default: input
	// holds passwords typed at prompts on the target.
	RecordInput bool
	// Retention limits the recordings directory.
	Retention Retention
	// OnRecordFailure is [Refuse] (default) or [Allow].
	OnRecordFailure FailurePolicy
	// DialTimeout bounds dialling and logging in to the target; 0 means 15s.
	DialTimeout time.Duration
	// EnvAllow lists the environment variables passed through; a trailing
	// '*' matches a prefix. Nil means LANG, LC_* and TERM.
	EnvAllow []string
	// FlushInterval is the longest recorded output waits in memory; 0 means
	// 500ms. A crash loses at most this much.
	FlushInterval time.Duration
	// NoSync skips fsync of recordings after each flush.
	NoSync bool
	// Ciphers, when set, is the cipher preference towards targets.
	Ciphers []string
	// Registerer, when set, receives the proxy's metrics.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Audit event names passed to [Options.Audit].
const (
	EventStart           = "recorded.start"            // session, user, source, target, kind, command, file
	EventEnd             = "recorded.end"              // ... + sha256, bytes, events, duration_ms, exit_status | exit_signal
	EventRefused         = "recorded.refused"          // session, user, target, reason
	EventHostKeyRejected = "recorded.hostkey_rejected" // session, user, target, addr, key, reason
	EventTransfer        = "recorded.transfer"         // session, user, target, protocol, op, path, bytes, ...
	EventRecordingFailed = "recorded.recording_failed" // session, user, target, error, action
	EventUnrecorded      = "recorded.unrecorded"       // session, user, target, reason (Allow policy only)
	EventTargetPrompt    = "recorded.target_prompt"    // session, user, target, prompts (answers never)
	EventPruned          = "recorded.pruned"           // file, bytes, reason
)

// Sentinel errors returned by [Proxy.Serve].
var (
	// ErrRecordingUnavailable: the recording could not be started or
	// failed, and the policy refused the session.
	ErrRecordingUnavailable = errors.New("recording unavailable")
	// ErrHostKey: the target's host key is neither pinned nor certified by
	// the target's host CA.
	ErrHostKey = errors.New("target host key not trusted")
	// ErrUnsupported: the client asked for something not relayed (a
	// subsystem other than sftp).
	ErrUnsupported = errors.New("not supported by the recording proxy")
)

// Proxy serves recorded sessions. It is safe for concurrent use.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	pruneMu   sync.Mutex
	lastPrune time.Time
}

// New checks opts and prepares the recordings directory.
func New(opts Options) (*Proxy, error) {
	if opts.Dir == "" {
		return nil, errors.New("recorded: recordings directory (Dir) is required")
	}
	if opts.UserCA == nil {
		return nil, errors.New("recorded: user CA signer (UserCA) is required")
	}
	switch opts.OnRecordFailure {
	case "":
		opts.OnRecordFailure = Refuse
	case Refuse, Allow:
	default:
		return nil, fmt.Errorf("recorded: on record failure %q: want %q or %q", opts.OnRecordFailure, Refuse, Allow)
	}
	if opts.CertTTL == 0 {
		opts.CertTTL = 5 * time.Minute
	}
	if opts.CertTTL < 0 {
		return nil, fmt.Errorf("recorded: certificate TTL %v is negative", opts.CertTTL)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 15 * time.Second
	}
	if opts.EnvAllow == nil {
		opts.EnvAllow = []string{"LANG", "LC_*", "TERM"}
	}
	if opts.Audit == nil {
		opts.Audit = func(string, map[string]any) {}
	}
	p := &Proxy{opts: opts, log: opts.Logger, now: opts.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recorded: recordings directory %s: %w", opts.Dir, err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	p.maybePrune(true)
	return p, nil
}

// newSessionID returns a sortable, unique session id: UTC start time and
// 32 random bits.
func newSessionID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape of a session id, so it can be
// used in a file name safely.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CastPath returns the recording file of session id in dir.
func CastPath(dir, id string) string { return filepath.Join(dir, id+".cast") }

// livePath returns the lock file that marks session id live.
func livePath(dir, id string) string { return filepath.Join(dir, id+".live") }

// Serve runs one gliderlabs session (shell, exec, or the sftp subsystem)
// against t, recorded, and returns when it ends. The exit status (or signal)
// has been sent to the client when Serve returns, and the session closed; a
// refused session gets a one-line reason on stderr and exit status 1.
func (p *Proxy) Serve(sess glssh.Session, user string, t Target) error {
	s := &session{p: p, sess: sess, user: user, target: t, start: p.now()}
	s.id = newSessionID(s.start)
	s.remoteUser = t.User
	if s.remoteUser == "" {
		s.remoteUser = user
	}
	s.raw = rawChannel(sess)
	err := s.run()
	if err != nil {
		p.log.Info("recorded session ended with error", "session", s.id, "user", user, "target", t.Name, "err", err)
	}
	return err
}

func (p *Proxy) audit(event string, fields map[string]any) {
	p.opts.Audit(event, fields)
}

// closeOnce guards io.Closer from double close races.
type closeOnce struct {
	once sync.Once
	c    io.Closer
}

func (c *closeOnce) Close() {
	c.once.Do(func() { c.c.Close() })
}
