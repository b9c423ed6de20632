package mfa

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/duosecurity/duo_api_golang"
	"github.com/duosecurity/duo_api_golang/authapi"
)

// Duo outcomes a caller branches on.
var (
	// ErrDuoDenied: Duo said no (user denied the push, wrong passcode,
	// locked out or not enrolled).
	ErrDuoDenied = errors.New("duo: denied")
	// ErrDuoTimeout: nobody answered the push in time.
	ErrDuoTimeout = errors.New("duo: push timed out")
	// ErrDuoUnavailable: Duo could not be reached or answered nonsense.
	// Callers fail closed unless configured to fail open.
	ErrDuoUnavailable = errors.New("duo: service unavailable")
)

// DuoConfig names one Duo Auth API application.
type DuoConfig struct {
	IntegrationKey string
	SecretKey      string
	APIHost        string // api-XXXXXXXX.duosecurity.com
	// CAFile replaces Duo's pinned root (on-premises proxies, tests).
	CAFile string
	// Timeout bounds each API call (default 15s).
	Timeout time.Duration
	// PushTimeout bounds the wait for a push answer (default 60s).
	PushTimeout time.Duration
	// PollInterval is the pause between auth_status polls (default 1s).
	PollInterval time.Duration
}

// Duo talks to the Auth API v2 through duo_api_golang.
type Duo struct {
	api    *authapi.AuthApi
	cfg    DuoConfig
	logger *slog.Logger
}

// NewDuo builds a client. Without CAFile the library's pinned roots are
// used.
func NewDuo(cfg DuoConfig, logger *slog.Logger) (*Duo, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = 60 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var pool *x509.CertPool
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("duo: ca_file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("duo: ca_file %s: no PEM certificates", cfg.CAFile)
		}
	}
	timeout := cfg.Timeout
	api := duoapi.NewDuoApi(cfg.IntegrationKey, cfg.SecretKey, cfg.APIHost, "rampart-bastion",
		duoapi.SetTimeout(timeout),
		duoapi.SetTransport(func(tr *http.Transport) {
			// auth_status calls go through the client without a timeout;
			// bound them here too.
			tr.ResponseHeaderTimeout = timeout
			tr.TLSHandshakeTimeout = timeout
			tr.Proxy = nil
			if pool != nil {
				tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
		}))
	return &Duo{api: authapi.NewAuthApi(*api), cfg: cfg, logger: logger}, nil
}

// Preauth is what Duo says about a user before any factor.
type Preauth struct {
	Result    string // auth, allow, deny, enroll
	StatusMsg string
	PushName  string // first push-capable device, "" if none
	HasPhone  bool
}

func statErr(stat, msg, detail string) error {
	return fmt.Errorf("%w: stat %q: %s %s", ErrDuoUnavailable, stat, msg, detail)
}

// Preauth asks Duo how user may authenticate from ip.
func (d *Duo) Preauth(ctx context.Context, user, ip string) (Preauth, error) {
	r, err := callCtx(ctx, func() (*authapi.PreauthResult, error) {
		return d.api.Preauth(authapi.PreauthUsername(user), authapi.PreauthIpAddr(ip))
	})
	if err != nil {
		return Preauth{}, fmt.Errorf("%w: preauth: %v", ErrDuoUnavailable, err)
	}
	if r.Stat != "OK" {
		if r.Code != nil && *r.Code/100 == 400 {
			// 40002 and friends: the request was refused, e.g. unknown user.
			return Preauth{Result: "deny", StatusMsg: deref(r.Message)}, nil
		}
		return Preauth{}, statErr(r.Stat, deref(r.Message), deref(r.Message_Detail))
	}
	p := Preauth{Result: r.Response.Result, StatusMsg: r.Response.Status_Msg}
	for _, dev := range r.Response.Devices {
		for _, c := range dev.Capabilities {
			switch c {
			case "push":
				if p.PushName == "" {
					p.PushName = dev.Device
					if dev.Name != "" {
						p.PushName = dev.Name
					}
				}
			case "phone":
				p.HasPhone = true
			}
		}
	}
	return p, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Push sends an asynchronous push and polls auth_status until the user
// answers, the push times out, or ctx ends. nil means allowed.
func (d *Duo) Push(ctx context.Context, user, ip string) error {
	return d.async(ctx, "push", user, ip, authapi.AuthDevice("auto"), authapi.AuthType("Rampart bastion login"))
}

// Phone has Duo call the user and polls for the result.
func (d *Duo) Phone(ctx context.Context, user, ip string) error {
	return d.async(ctx, "phone", user, ip, authapi.AuthDevice("auto"))
}

// Passcode checks a Duo passcode (hardware token, SMS or app code).
func (d *Duo) Passcode(ctx context.Context, user, ip, code string) error {
	r, err := callCtx(ctx, func() (*authapi.AuthResult, error) {
		return d.api.Auth("passcode", authapi.AuthUsername(user), authapi.AuthIpAddr(ip), authapi.AuthPasscode(code))
	})
	if err != nil {
		return fmt.Errorf("%w: auth: %v", ErrDuoUnavailable, err)
	}
	if r.Stat != "OK" {
		return statErr(r.Stat, deref(r.Message), deref(r.Message_Detail))
	}
	return verdict(r.Response.Result, r.Response.Status_Msg)
}

func verdict(result, msg string) error {
	switch result {
	case "allow":
		return nil
	case "deny":
		return fmt.Errorf("%w: %s", ErrDuoDenied, msg)
	}
	return fmt.Errorf("%w: unexpected result %q", ErrDuoUnavailable, result)
}

func (d *Duo) async(ctx context.Context, factor, user, ip string, opts ...func(*url.Values)) error {
	all := append([]func(*url.Values){authapi.AuthUsername(user), authapi.AuthIpAddr(ip), authapi.AuthAsync()}, opts...)
	r, err := callCtx(ctx, func() (*authapi.AuthResult, error) { return d.api.Auth(factor, all...) })
	if err != nil {
		return fmt.Errorf("%w: auth: %v", ErrDuoUnavailable, err)
	}
	if r.Stat != "OK" {
		return statErr(r.Stat, deref(r.Message), deref(r.Message_Detail))
	}
	txid := r.Response.Txid
	if txid == "" {
		return fmt.Errorf("%w: async auth returned no txid", ErrDuoUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.PushTimeout)
	defer cancel()
	for {
		s, err := callCtx(ctx, func() (*authapi.AuthStatusResult, error) { return d.api.AuthStatus(txid) })
		if ctx.Err() != nil {
			return fmt.Errorf("%w after %v", ErrDuoTimeout, d.cfg.PushTimeout)
		}
		if err != nil {
			return fmt.Errorf("%w: auth_status: %v", ErrDuoUnavailable, err)
		}
		if s.Stat != "OK" {
			return statErr(s.Stat, deref(s.Message), deref(s.Message_Detail))
		}
		if s.Response.Result != "waiting" {
			return verdict(s.Response.Result, s.Response.Status_Msg)
		}
		d.logger.Debug("duo: waiting for push answer", "user", user, "status", s.Response.Status)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w after %v", ErrDuoTimeout, d.cfg.PushTimeout)
		case <-time.After(d.cfg.PollInterval):
		}
	}
}

// callCtx runs a blocking library call and gives up when ctx ends (the
// library takes no context; its own timeouts end the abandoned call).
func callCtx[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := f()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
