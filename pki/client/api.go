package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// Sentinel errors for refusals a caller branches on. The CA's answer is
// wrapped, so errors.Is works and the message still says what the CA said.
var (
	ErrTokenUsed      = errors.New("token already used")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenWrongName = errors.New("token not valid for the requested names")
	ErrFingerprint    = errors.New("root fingerprint mismatch")
	ErrRevoked        = errors.New("certificate revoked")
	ErrUnauthorized   = errors.New("not authorized")
)

// APIError is a non-2xx answer from the CA.
type APIError struct {
	Status  int
	Message string
	Path    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("CA answered %s with %d: %s", e.Path, e.Status, e.Message)
}

// Unwrap maps the CA's message onto the sentinel errors.
func (e *APIError) Unwrap() error {
	m := strings.ToLower(e.Message)
	switch {
	case strings.Contains(m, "already used"):
		return ErrTokenUsed
	case strings.Contains(m, "renewal after expiry is not allowed"), strings.Contains(m, "certificate expired on"),
		strings.Contains(m, "certificate expired too long ago"):
		// pki's explanations (renewal after expiry off, or the
		// certificate expired longer ago than the CA allows), or step-ca's
		// own wording, of a renewal refused because the certificate
		// expired: not a token problem.
		return ErrExpired
	case strings.Contains(m, "expired"):
		return ErrTokenExpired
	case strings.Contains(m, "not valid for the requested names"):
		return ErrTokenWrongName
	case strings.Contains(m, "revoked"):
		return ErrRevoked
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return ErrUnauthorized
	}
	return nil
}

// Client talks to one CA whose root is known.
type Client struct {
	base  *url.URL
	roots *x509.CertPool
	hc    *http.Client
}

// New returns a client for the CA at caURL (https://host:port) that trusts
// only roots.
func New(caURL string, roots *x509.CertPool) (*Client, error) {
	u, err := parseCAURL(caURL)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: u, roots: roots, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// NewFromDir returns a client for caURL trusting the root.pem of a
// bootstrapped directory.
func NewFromDir(caURL, dir string) (*Client, error) {
	roots, err := readCerts(dir + "/" + RootFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	return New(caURL, pool)
}

func parseCAURL(caURL string) (*url.URL, error) {
	u, err := url.Parse(caURL)
	if err != nil {
		return nil, fmt.Errorf("CA URL %q: %w", caURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("CA URL %q: want https://host[:port]", caURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert in lower-case hex, the
// form `pki init` prints and `pki bootstrap --fingerprint` takes.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

func normalizeFingerprint(fp string) string {
	fp = strings.ToLower(strings.TrimSpace(fp))
	fp = strings.TrimPrefix(fp, "sha256:")
	return strings.ReplaceAll(fp, ":", "")
}

// FetchRoot downloads the CA's root over an unauthenticated TLS connection
// and accepts it only if its SHA-256 fingerprint is fingerprint. Every later
// request is then verified against that root, so a man in the middle who
// replays the public root still cannot finish a handshake.
func FetchRoot(ctx context.Context, caURL, fingerprint string) (*x509.Certificate, error) {
	u, err := parseCAURL(caURL)
	if err != nil {
		return nil, err
	}
	want := normalizeFingerprint(fingerprint)
	if len(want) != 64 {
		return nil, fmt.Errorf("fingerprint %q: want 64 hex digits (SHA-256)", fingerprint)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // #nosec G402 -- the answer is pinned by fingerprint below
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var resp struct {
		CA string `json:"ca"`
	}
	if err := doJSON(ctx, hc, http.MethodGet, u.String()+"/root/"+want, nil, &resp, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, fmt.Errorf("CA %s has no root with fingerprint %s: %w", caURL, want, ErrFingerprint)
		}
		return nil, fmt.Errorf("fetch root: %w", err)
	}
	certs, err := pemcert.Parse([]byte(resp.CA))
	if err != nil {
		return nil, fmt.Errorf("fetch root: %w", err)
	}
	if got := Fingerprint(certs[0]); got != want {
		return nil, fmt.Errorf("CA %s served root %s, pinned %s: %w", caURL, got, want, ErrFingerprint)
	}
	return certs[0], nil
}

// signResponse is step-ca's api.SignResponse.
type signResponse struct {
	Crt       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

func (s *signResponse) chain() ([]*x509.Certificate, error) {
	pems := s.CertChain
	if len(pems) == 0 {
		pems = []string{s.Crt, s.CA}
	}
	var chain []*x509.Certificate
	for _, p := range pems {
		c, err := pemcert.Parse([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("CA answer: %w", err)
		}
		chain = append(chain, c...)
	}
	return chain, nil
}

// Sign sends csr with token to POST /1.0/sign and returns leaf and chain.
// notAfter, if non-zero, asks for that lifetime (the CA clamps it to its
// limits and refuses values outside them).
func (c *Client) Sign(ctx context.Context, csr *x509.CertificateRequest, token string, lifetime time.Duration) ([]*x509.Certificate, error) {
	req := map[string]any{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})),
		"ott": token,
	}
	if lifetime > 0 {
		req["notAfter"] = lifetime.String()
	}
	var resp signResponse
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base.String()+"/1.0/sign", req, &resp, nil); err != nil {
		return nil, err
	}
	return resp.chain()
}

// renew posts to /1.0/renew authenticated by the current certificate (mTLS),
// or by an x5c renew token when the certificate has already expired.
func (c *Client) renew(ctx context.Context, b *Bundle, now time.Time) ([]*x509.Certificate, error) {
	var resp signResponse
	if now.Before(b.Leaf().NotAfter) {
		tr := c.hc.Transport.(*http.Transport).Clone()
		cert := tls.Certificate{PrivateKey: b.Key, Leaf: b.Leaf()}
		for _, x := range b.Chain {
			cert.Certificate = append(cert.Certificate, x.Raw)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: c.hc.Timeout}
		if err := doJSON(ctx, hc, http.MethodPost, c.base.String()+"/1.0/renew", struct{}{}, &resp, nil); err != nil {
			return nil, err
		}
		return resp.chain()
	}
	tok, err := renewToken(b, c.base.String()+"/1.0/renew", now)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base.String()+"/1.0/renew", struct{}{}, &resp, hdr); err != nil {
		return nil, err
	}
	return resp.chain()
}

// Revoke asks the CA to revoke serial (decimal, or hex with 0x): it can no
// longer be renewed, and the CA's CRL lists it at once, so peers checking
// it ([Source.CheckRevocation]) refuse it; to anyone else it stays valid
// until it expires. token is a revoke token (see [Provisioner.RevokeToken]).
func (c *Client) Revoke(ctx context.Context, serial, token, reason string) error {
	req := map[string]any{"serial": serial, "ott": token, "passive": true, "reason": reason}
	var resp map[string]any
	return doJSON(ctx, c.hc, http.MethodPost, c.base.String()+"/1.0/revoke", req, &resp, nil)
}

// CloseIdleConnections releases pooled connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

func doJSON(ctx context.Context, hc *http.Client, method, u string, in, out any, hdr http.Header) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "rampart-pki")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
			Detail  string `json:"detail"`
		}
		_ = json.Unmarshal(data, &e)
		msg := e.Message
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: msg, Path: req.URL.Path}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, u, err)
	}
	return nil
}

// Renew renews b in memory (mTLS with b's certificate, or a renew token if
// it has expired) and returns the new bundle with the same key. Nothing is
// written; [Renew] and [Renewer] are the file-based forms.
func (c *Client) Renew(ctx context.Context, b *Bundle) (*Bundle, error) {
	now := time.Now()
	chain, err := c.renew(ctx, b, now)
	if err != nil {
		return nil, err
	}
	if err := verifyChain(chain, b.Root, now); err != nil {
		return nil, fmt.Errorf("renew: CA answer: %w", err)
	}
	return &Bundle{Key: b.Key, Chain: chain, Root: b.Root}, nil
}
