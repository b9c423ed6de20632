package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority"
	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql/database"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/sshutil"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// Server is a running CA: step-ca's authority behind step-ca's HTTP API,
// wrapped in Rampart's policy, error, audit and metrics layers.
type Server struct {
	cfg     *ca.Config
	auth    *authority.Authority
	logger  *slog.Logger
	audit   *slog.Logger
	auditW  io.Closer
	root    *x509.Certificate
	handler http.Handler
	tlsConf *tls.Config
	m       *serverMetrics
	policy  *namePolicy
	// renewalAfterExpiryMax is how long after its NotAfter a certificate
	// still renews; 0 when renewal after expiry is off.
	renewalAfterExpiryMax time.Duration
	now                   func() time.Time // nil: time.Now
	store                 database.DB      // closed here: step's Shutdown skips a store it did not open

	tlsMu   sync.Mutex
	tlsCert *tls.Certificate

	acme http.Handler // nil unless acme.enabled
}

// New opens the store and builds the authority described by cfg. reg may be
// nil. Close releases the store.
func New(ctx context.Context, cfg *ca.Config, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	pw, err := client.ReadPassword(cfg.Path(cfg.PasswordFile))
	if err != nil {
		return nil, fmt.Errorf("pki serve: %w", err)
	}
	sc, err := stepConfig(cfg, pw)
	if err != nil {
		return nil, fmt.Errorf("pki serve: %w", err)
	}
	pol, err := newNamePolicy(cfg)
	if err != nil {
		return nil, fmt.Errorf("pki serve: policy: %w", err)
	}
	s := &Server{cfg: cfg, logger: logger, m: newServerMetrics(reg), policy: pol, renewalAfterExpiryMax: cfg.RenewalAfterExpiryLimit()}
	opts := []authority.Option{
		authority.WithPassword(pw),
		authority.WithSSHHostPassword(pw),
		authority.WithSSHUserPassword(pw),
		authority.WithQuietInit(),
		authority.WithMeter(&acmeAuditMeter{serverMetrics: s.m, s: s}),
	}
	var store database.DB
	switch cfg.Store.Type {
	case "bbolt":
		store, err = openBoltStore(cfg.Path(cfg.Store.Path))
	case "postgresql":
		store, err = openPGStore(ctx, cfg.Store.DSN, cfg.Store.Database)
	}
	if err != nil {
		return nil, fmt.Errorf("pki serve: %w", err)
	}
	for _, t := range stepTables {
		if err := store.CreateTable([]byte(t)); err != nil {
			store.Close()
			return nil, fmt.Errorf("pki serve: %s store: create %s: %w", cfg.Store.Type, t, err)
		}
	}
	s.store = store
	opts = append(opts, authority.WithDatabase(&db.DB{DB: store}))
	auth, err := authority.New(sc, opts...)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("pki serve: start authority (store %s): %w", cfg.Store.Type, err)
	}
	s.auth = auth
	s.root = auth.GetRootCertificate()
	if err := s.openAudit(); err != nil {
		_ = auth.Shutdown()
		return nil, err
	}
	if err := s.buildTLS(); err != nil {
		s.Close()
		return nil, fmt.Errorf("pki serve: TLS: %w", err)
	}
	if err := s.startExtras(reg); err != nil {
		s.Close()
		return nil, fmt.Errorf("pki serve: %w", err)
	}
	s.handler = s.buildHandler()
	return s, nil
}

func stepConfig(c *ca.Config, pw []byte) (*stepconfig.Config, error) {
	jwk, err := readJWK(c.Path(c.Provisioner.PublicKey))
	if err != nil {
		return nil, err
	}
	d := func(v time.Duration) *provisioner.Duration { return &provisioner.Duration{Duration: v} }
	yes, renewAfter := true, c.Leaf.AllowRenewalAfterExpiry
	claims := &provisioner.Claims{
		MinTLSDur:               d(time.Duration(c.Leaf.Min)),
		MaxTLSDur:               d(time.Duration(c.Leaf.Max)),
		DefaultTLSDur:           d(time.Duration(c.Leaf.Default)),
		AllowRenewalAfterExpiry: &renewAfter,
	}
	if c.SSH.Enabled {
		claims.EnableSSHCA = &yes
		claims.MinUserSSHDur = d(time.Minute)
		claims.DefaultUserSSHDur = d(time.Duration(c.SSH.UserDefault))
		claims.MaxUserSSHDur = d(time.Duration(c.SSH.UserMax))
		claims.MinHostSSHDur = d(5 * time.Minute)
		claims.DefaultHostSSHDur = d(time.Duration(c.SSH.HostDefault))
		claims.MaxHostSSHDur = d(time.Duration(c.SSH.HostMax))
	}
	sc := &stepconfig.Config{
		Root:             []string{c.Path(c.RootCert)},
		IntermediateCert: c.Path(c.IntermediateCert),
		IntermediateKey:  c.Path(c.IntermediateKey),
		Address:          c.Listen,
		DNSNames:         c.DNSNames,
		Password:         string(pw),
		AuthorityConfig: &stepconfig.AuthConfig{
			Provisioners: provisioner.List{&provisioner.JWK{
				Type:   "JWK",
				Name:   c.Provisioner.Name,
				Key:    jwk,
				Claims: claims,
			}},
			// Tokens outlive restarts: the used-token table in the store,
			// not the CA's start time, is what stops replays.
			DisableIssuedAtCheck: true,
		},
	}
	if p := c.SSHUserProvisioner; p.Name != "" && c.SSH.Enabled {
		key, err := readJWK(c.Path(p.PublicKey))
		if err != nil {
			return nil, err
		}
		sc.AuthorityConfig.Provisioners = append(sc.AuthorityConfig.Provisioners, &provisioner.JWK{
			Type:    "JWK",
			Name:    p.Name,
			Key:     key,
			Claims:  claims,
			Options: sshUserOnly,
		})
	}
	switch c.Store.Type {
	case "bbolt":
		sc.DB = &db.Config{Type: "bbolt", DataSource: c.Path(c.Store.Path)}
	case "postgresql":
		sc.DB = &db.Config{Type: "postgresql", DataSource: c.Store.DSN, Database: c.Store.Database}
	}
	if c.SSH.Enabled {
		sc.SSH = &stepconfig.SSHConfig{HostKey: c.Path(c.SSH.HostKey), UserKey: c.Path(c.SSH.UserKey)}
	}
	if err := applyExtras(c, sc); err != nil {
		return nil, err
	}
	return sc, nil
}

func (s *Server) openAudit() error {
	if s.cfg.AuditLog == "" || s.cfg.AuditLog == "-" {
		s.audit = s.logger.With("log", "audit")
		return nil
	}
	p := s.cfg.Path(s.cfg.AuditLog)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("pki serve: audit log: %w", err)
	}
	s.auditW = f
	s.audit = slog.New(slog.NewJSONHandler(f, nil))
	return nil
}

// buildTLS serves the CA's own certificate (issued by its intermediate for
// DNSNames, renewed at two thirds of its life) and asks for, but does not
// require, client certificates: /renew authenticates with them.
func (s *Server) buildTLS() error {
	if _, err := s.serverCert(); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range s.auth.GetRootCertificates() {
		pool.AddCert(c)
	}
	for _, c := range s.auth.GetIntermediateCertificates() {
		pool.AddCert(c)
	}
	s.tlsConf = &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.serverCert()
		},
	}
	return nil
}

func (s *Server) serverCert() (*tls.Certificate, error) {
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	if c := s.tlsCert; c != nil && time.Now().Before(client.RenewAt(c.Leaf.NotBefore, c.Leaf.NotAfter, 0)) {
		return c, nil
	}
	c, err := s.auth.GetTLSCertificate()
	if err != nil {
		if s.tlsCert != nil {
			s.logger.Error("pki: renew the CA's own TLS certificate", "err", err)
			return s.tlsCert, nil
		}
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	s.tlsCert = c
	return c, nil
}

func (s *Server) buildHandler() http.Handler {
	mux := chi.NewRouter()
	api.Route(mux)
	mux.Route("/1.0", func(r chi.Router) { api.Route(r) })
	return s.routeExtras(s.wrap(mux))
}

// Handler is the HTTP API (for tests and for embedding behind another
// listener); it expects TLS to be terminated with [Server.TLSConfig].
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the server-side TLS configuration.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConf }

// Root is the CA's root certificate.
func (s *Server) Root() *x509.Certificate { return s.root }

// Fingerprint is the SHA-256 fingerprint hosts pin.
func (s *Server) Fingerprint() string { return client.Fingerprint(s.root) }

// Serve answers on ln (TLS is added here) until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	defer close(done)
	s.logger.Info("pki: serving", "addr", ln.Addr().String(), "url", s.cfg.URL, "fingerprint", s.Fingerprint(), "store", s.cfg.Store.Type)
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close releases the store and the audit log.
func (s *Server) Close() error {
	err := s.auth.Shutdown()
	err = errors.Join(err, s.store.Close())
	if s.auditW != nil {
		err = errors.Join(err, s.auditW.Close())
	}
	return err
}

// sshUserOnly restricts a provisioner to SSH user certificates: step-ca
// renders these templates for every request, and "fail" refuses it.
var sshUserOnly = &provisioner.Options{
	X509: &provisioner.X509Options{Template: `{{ fail "this provisioner issues SSH user certificates only" }}`},
	SSH: &provisioner.SSHOptions{Template: `{{ if ne .Type "user" }}{{ fail "this provisioner issues SSH user certificates only" }}{{ end }}` +
		sshutil.DefaultTemplate},
}

func readJWK(path string) (*jose.JSONWebKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provisioner public key: %w", err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(b, &jwk); err != nil {
		return nil, fmt.Errorf("provisioner public key %s: %w", path, err)
	}
	return &jwk, nil
}
