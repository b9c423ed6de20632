package bastion

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/guard"
	"github.com/rampart-sec/rampart/bastion/mfa"
	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// Deps are what Setup cannot build from the config alone.
type Deps struct {
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Reporter guard.Reporter // blocklistd; nil: never report
	Record   RecordFunc     // recorded sessions; nil: unavailable
}

// Setup builds a Server from a loaded config: host keys (generated on
// first start), the audit log (and its syslog copy), the TOTP store, Duo
// and the brute-force guard. The returned close function flushes and
// closes the audit log; call it after the server has stopped.
func Setup(ctx context.Context, cfg *Config, deps Deps) (*Server, func() error, error) {
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Path(cfg.StateDir), 0o700); err != nil {
		return nil, nil, fmt.Errorf("bastion: state_dir: %w", err)
	}
	signers, err := LoadHostKeys(cfg.Path(cfg.HostKeyDir))
	if err != nil {
		return nil, nil, err
	}
	var certs []string
	for _, c := range cfg.HostCertificates {
		certs = append(certs, cfg.Path(c))
	}
	if signers, err = WithHostCertificates(signers, certs); err != nil {
		return nil, nil, err
	}
	policy, err := NewPolicy(cfg)
	if err != nil {
		return nil, nil, err
	}
	store, err := mfa.NewTOTPStore(cfg.Path(cfg.TOTP.SecretDir), nil)
	if err != nil {
		return nil, nil, err
	}
	var sinks []audit.Sink
	if sc := cfg.Audit.Syslog; sc != nil {
		tlsCfg, err := clientTLS(cfg, sc.CAFile, sc.CertFile, sc.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("bastion: audit syslog: %w", err)
		}
		sinks = append(sinks, audit.NewSyslogForwarder(ctx, audit.SyslogConfig{Addr: sc.Addr, TLS: tlsCfg, AppName: sc.AppName, Logger: logger}))
	}
	auditPath := cfg.Path(cfg.Audit.File)
	if err := os.MkdirAll(filepath.Dir(auditPath), 0o700); err != nil {
		return nil, nil, fmt.Errorf("bastion: audit directory: %w", err)
	}
	alog, err := audit.Open(auditPath, audit.Options{Sinks: sinks})
	if err != nil {
		return nil, nil, err
	}
	var duo *mfa.Duo
	if d := cfg.Duo; d != nil {
		skey, err := os.ReadFile(cfg.Path(d.SecretKeyFile))
		if err != nil {
			alog.Close()
			return nil, nil, fmt.Errorf("bastion: duo secret_key_file: %w", err)
		}
		duo, err = mfa.NewDuo(mfa.DuoConfig{IntegrationKey: d.IntegrationKey, SecretKey: strings.TrimSpace(string(skey)), APIHost: d.APIHost,
			CAFile: cfg.Path(d.CAFile), Timeout: time.Duration(d.Timeout), PushTimeout: time.Duration(d.PushTimeout), PollInterval: time.Duration(d.PollInterval)}, logger)
		if err != nil {
			alog.Close()
			return nil, nil, err
		}
	}
	var srv *Server
	bf := cfg.BruteForce
	g := guard.New(guard.Config{
		Window: time.Duration(bf.Window), SourceThreshold: bf.SourceThreshold, UserThreshold: bf.UserThreshold,
		Lockout: time.Duration(bf.Lockout), ReportThreshold: bf.ReportThreshold,
		BackoffBase: time.Duration(bf.BackoffBase), BackoffMax: time.Duration(bf.BackoffMax),
	}, guard.Options{Reporter: deps.Reporter, Logger: logger, OnReport: func(a netip.Addr, err error) {
		// srv is set before the server accepts its first connection.
		srv.reported(a, err)
	}, OnLock: func(ev guard.Event) { srv.lockEvent(ev) }})
	srv, err = New(Options{Config: cfg, Policy: policy, HostSigners: signers, Audit: alog, TOTP: store, Duo: duo,
		DuoFailOpen: cfg.Duo != nil && cfg.Duo.FailMode == "open", Guard: g, Record: deps.Record, Logger: logger, Registry: deps.Registry})
	if err != nil {
		alog.Close()
		return nil, nil, err
	}
	go srv.sweepLockouts(ctx)
	return srv, alog.Close, nil
}

func (s *Server) reported(a netip.Addr, err error) {
	rec := audit.Record{Type: audit.TypeRefusal, Source: a.String(), Method: "blocklist-report", Result: audit.ResultSuccess,
		Reason: "reported to blocklistd after repeated failures"}
	result := "ok"
	if err != nil {
		rec.Result, rec.Reason, result = audit.ResultFailure, "report to blocklistd failed: "+err.Error(), "error"
	}
	s.m.reports.WithLabelValues(result).Inc()
	s.audit(rec)
}

// clientTLS builds a TLS client config from PEM files (paths relative to
// the config file).
func clientTLS(cfg *Config, caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(cfg.Path(caFile))
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Path(certFile), cfg.Path(keyFile))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// ClientTLS is clientTLS for cmd/bastion (the blocklist reporter).
func (c *Config) ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	return clientTLS(c, caFile, certFile, keyFile)
}

// AddUserRequest is "bastion user add".
type AddUserRequest struct {
	Name         string
	KeyFile      string // authorized_keys-style file; every key in it is added
	TOTP         bool
	Duo          bool
	Groups       []string
	Targets      []string
	QR           bool // print a terminal QR code with the otpauth URI
	SecondFactor string
	// Force replaces a user that "bastion user add" enrolled before (a
	// lost phone, a new key): new key list, new TOTP secret, new
	// recovery codes. Users of the main config file are never replaced.
	Force bool
}

// AddUser writes users_dir/NAME.yaml and, with TOTP, enrols a new secret,
// printing the otpauth:// URI (and a QR code) and one-time recovery codes
// to w. A user it enrolled before is replaced only with req.Force. The
// running server picks the file up without a restart (it watches
// users_dir).
func AddUser(cfg *Config, req AddUserRequest, w io.Writer) error {
	if !mfa.ValidUserName(req.Name) {
		return fmt.Errorf("bastion: user add: invalid name %q (lowercase letters, digits, . _ -)", req.Name)
	}
	if cfg.UsersDir == "" {
		return errors.New("bastion: user add: set users_dir in the config so users can be added without editing it")
	}
	_, enabled := cfg.Users[req.Name]
	exists := enabled || cfg.disabled[req.Name] != nil
	switch {
	case exists && !cfg.UserFromDir(req.Name):
		return fmt.Errorf("bastion: user add: %s is defined in the main config file; edit it there", req.Name)
	case exists && !req.Force:
		return fmt.Errorf("bastion: user add: %s exists (%s); --force replaces it: new keys, new TOTP secret, new recovery codes", req.Name, filepath.Join(cfg.Path(cfg.UsersDir), req.Name+".yaml"))
	}
	u := UserConfig{Groups: req.Groups, Targets: req.Targets}
	if req.KeyFile != "" {
		data, err := os.ReadFile(req.KeyFile)
		if err != nil {
			return fmt.Errorf("bastion: user add: --key: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			pk, err := ParseAuthorizedKey(line)
			if err != nil {
				return fmt.Errorf("bastion: user add: %s:%d: %w", req.KeyFile, i+1, err)
			}
			if err := CheckKeyType(pk); err != nil {
				return fmt.Errorf("bastion: user add: %s:%d: %w", req.KeyFile, i+1, err)
			}
			u.Keys = append(u.Keys, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk)))+" "+req.Name)
		}
	}
	switch {
	case req.SecondFactor != "":
		u.SecondFactor = req.SecondFactor
	case req.TOTP && req.Duo:
		u.SecondFactor = FactorEither
	case req.Duo:
		u.SecondFactor = FactorDuo
	default:
		u.SecondFactor = FactorTOTP
	}
	// Validate the new user against the whole config before writing.
	check := *cfg
	check.Users = map[string]*UserConfig{}
	for k, v := range cfg.Users {
		check.Users[k] = v
	}
	uc := u
	check.Users[req.Name] = &uc
	if err := check.Validate(); err != nil {
		return fmt.Errorf("bastion: user add: %w", err)
	}
	data, err := yaml.Marshal(u)
	if err != nil {
		return err
	}
	dir := cfg.Path(cfg.UsersDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bastion: user add: %w", err)
	}
	header := "# " + req.Name + ": written by `bastion user add`\n"
	if err := atomicfile.WriteFile(filepath.Join(dir, req.Name+".yaml"), append([]byte(header), data...), atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("bastion: user add: %w", err)
	}
	verb := "written to"
	if exists {
		verb = "replaced in"
	}
	fmt.Fprintf(w, "user %s %s %s\n", req.Name, verb, filepath.Join(dir, req.Name+".yaml"))
	store, err := mfa.NewTOTPStore(cfg.Path(cfg.TOTP.SecretDir), nil)
	if err != nil {
		return err
	}
	if req.TOTP {
		if err := enrolTOTP(cfg, store, req.Name, req.QR, w); err != nil {
			return err
		}
	} else if err := store.Remove(req.Name); err != nil {
		// A replaced user keeps no TOTP secret it was not given again.
		return err
	}
	return issueRecoveryCodes(store, req.Name, w)
}

// enrolTOTP stores a new TOTP secret for name and prints its otpauth URI
// (and a QR code).
func enrolTOTP(cfg *Config, store *mfa.TOTPStore, name string, qr bool, w io.Writer) error {
	key, err := store.Enroll(cfg.TOTP.Issuer, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "TOTP secret enrolled (stored 0600 in %s).\nScan this with a phone authenticator, or enter the URI:\n\n%s\n\n", cfg.Path(cfg.TOTP.SecretDir), key.URL())
	if qr {
		qrterminal.GenerateWithConfig(key.URL(), qrterminal.Config{Level: qrterminal.L, Writer: w, HalfBlocks: true,
			BlackChar: qrterminal.BLACK_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE,
			WhiteBlackChar: qrterminal.WHITE_BLACK, QuietZone: 2})
	}
	return nil
}

// issueRecoveryCodes replaces name's recovery codes and prints them.
func issueRecoveryCodes(store *mfa.TOTPStore, name string, w io.Writer) error {
	codes, err := store.IssueRecoveryCodes(name, mfa.RecoveryCodes)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Recovery codes for %s: each works once instead of the second factor\n(after the key). Hand them over now; they are stored only hashed.\n", name)
	for _, c := range codes {
		fmt.Fprintf(w, "  %s\n", c)
	}
	return nil
}
