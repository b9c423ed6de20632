package bastion

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/recorded"
)

// NewRecorder builds the [RecordFunc] for cfg's recording: section: a
// [recorded.Proxy] that signs short-lived certificates with user_ca_key,
// writes asciicast files under recording.dir and reports its events to
// srv's audit log. Pass the result to [Server.SetRecorder].
func NewRecorder(cfg *Config, srv *Server, logger *slog.Logger, reg prometheus.Registerer) (RecordFunc, error) {
	rc := cfg.Recording
	if rc.UserCAKey == "" {
		return nil, errors.New("recording: user_ca_key is required (the CA key that signs short-lived certificates for targets)")
	}
	pem, err := os.ReadFile(cfg.Path(rc.UserCAKey))
	if err != nil {
		return nil, fmt.Errorf("recording: user_ca_key: %w", err)
	}
	ca, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("recording: user_ca_key %s: %w", rc.UserCAKey, err)
	}
	p, err := recorded.New(recorded.Options{Dir: cfg.Path(rc.Dir), UserCA: ca, CertTTL: time.Duration(rc.CertTTL),
		RecordInput:     rc.RecordInput,
		Retention:       recorded.Retention{MaxBytes: rc.Retention.MaxBytes, MaxAge: time.Duration(rc.Retention.MaxAge)},
		OnRecordFailure: recorded.FailurePolicy(rc.OnFailure),
		Audit:           srv.AuditEvent, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return func(sess glssh.Session, user string, t *Target) error {
		return p.Serve(sess, user, recorded.Target{Name: t.Name, Addr: t.Addr, User: t.User, HostKeys: t.HostKeys, HostCA: t.HostCA})
	}, nil
}

// RecordingsDir returns dir if it is set, else recording.dir from the
// config file at cfgPath (resolved against the file's directory), which
// "bastion sessions" and "bastion watch" read.
func RecordingsDir(dir, cfgPath string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return "", fmt.Errorf("finding the recordings directory (or pass --dir): %w", err)
	}
	if cfg.Recording.Dir == "" {
		return "", fmt.Errorf("%s: recording.dir is not set: recorded sessions are off (or pass --dir)", cfgPath)
	}
	return cfg.Path(cfg.Recording.Dir), nil
}
