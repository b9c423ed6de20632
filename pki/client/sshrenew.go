package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pkg/hook"
)

// SSHHostRenewer keeps an SSH host certificate fresh the way `step ssh
// renew` does: it proves to the CA's SSHPOP provisioner that it holds the
// host key (a token signed by that key, carrying the current certificate)
// and gets a new certificate with the same principals and lifetime. The
// new certificate replaces CertFile atomically (0644), then Hook runs
// (reload sshd so it serves the new one).
type SSHHostRenewer struct {
	KeyFile  string // the host's private key, e.g. /etc/ssh/ssh_host_ed25519_key
	CertFile string // default KeyFile + "-cert.pub"
	Client   *Client
	// Provisioner is the CA's SSHPOP provisioner name (default "sshpop").
	Provisioner string

	Hook        string
	HookTimeout time.Duration
	Logger      *slog.Logger
	// MinBackoff and MaxBackoff bound the retry delay in Run; defaults 1s
	// and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock that decides when a renewal is due; nil = time.Now.
	Now func() time.Time
}

func (r *SSHHostRenewer) init() {
	if r.CertFile == "" {
		r.CertFile = r.KeyFile + "-cert.pub"
	}
	if r.Provisioner == "" {
		r.Provisioner = "sshpop"
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 5 * time.Minute
	}
}

func (r *SSHHostRenewer) load() (*ssh.Certificate, crypto.Signer, error) {
	b, err := os.ReadFile(r.CertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh host certificate: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh host certificate %s: %w", r.CertFile, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert {
		return nil, nil, fmt.Errorf("ssh host certificate %s: not an SSH host certificate", r.CertFile)
	}
	kb, err := os.ReadFile(r.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh host key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh host key %s: %w", r.KeyFile, err)
	}
	if k, ok := raw.(*ed25519.PrivateKey); ok {
		raw = *k
	}
	key, ok := raw.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("ssh host key %s: %T cannot sign", r.KeyFile, raw)
	}
	sshPub, err := ssh.NewPublicKey(key.Public())
	if err != nil || string(sshPub.Marshal()) != string(cert.Key.Marshal()) {
		return nil, nil, fmt.Errorf("ssh host key %s does not match the certificate %s", r.KeyFile, r.CertFile)
	}
	return cert, key, nil
}

// sshRenewAt is when a certificate is due: two thirds of its lifetime.
func sshRenewAt(c *ssh.Certificate) time.Time {
	return RenewAt(time.Unix(int64(c.ValidAfter), 0), time.Unix(int64(c.ValidBefore), 0), 0)
}

// RenewIfDue renews once two thirds of the certificate's lifetime have
// passed (or now with force), writes it and runs the hook. It reports
// whether it renewed.
func (r *SSHHostRenewer) RenewIfDue(ctx context.Context, force bool) (bool, error) {
	r.init()
	cert, key, err := r.load()
	if err != nil {
		return false, err
	}
	if !force && r.Now().Before(sshRenewAt(cert)) {
		return false, nil
	}
	if err := r.renew(ctx, cert, key); err != nil {
		return false, err
	}
	return true, nil
}

func (r *SSHHostRenewer) renew(ctx context.Context, cert *ssh.Certificate, key crypto.Signer) error {
	// The token is dated by the real clock: the CA checks it against its
	// own; Now only decides when a renewal is due.
	tok, err := sshPOPToken(r.Client.base.String(), r.Provisioner, cert, key, time.Now())
	if err != nil {
		return err
	}
	var resp struct {
		Crt string `json:"crt"`
	}
	if err := doJSON(ctx, r.Client.hc, http.MethodPost, r.Client.base.String()+"/1.0/ssh/renew", map[string]string{"ott": tok}, &resp, nil); err != nil {
		return fmt.Errorf("renew ssh host certificate %s: %w", r.CertFile, err)
	}
	der, err := base64.StdEncoding.DecodeString(resp.Crt)
	if err != nil {
		return fmt.Errorf("renew ssh host certificate: CA answer: %w", err)
	}
	k, err := ssh.ParsePublicKey(der)
	if err != nil {
		return fmt.Errorf("renew ssh host certificate: CA answer: %w", err)
	}
	next, ok := k.(*ssh.Certificate)
	if !ok || next.CertType != ssh.HostCert || string(next.Key.Marshal()) != string(cert.Key.Marshal()) {
		return errors.New("renew ssh host certificate: the CA answered with something other than a host certificate for this key")
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(next))) + " " + next.KeyId + "\n"
	if err := atomicfile.WriteFile(r.CertFile, []byte(line), atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return err
	}
	r.Logger.Info("pki: ssh host certificate renewed", "file", r.CertFile, "serial", next.Serial, "principals", next.ValidPrincipals,
		"valid_before", time.Unix(int64(next.ValidBefore), 0).UTC())
	if r.Hook != "" {
		if _, err := hook.Run(ctx, r.Logger, hook.Hook{Command: r.Hook, Timeout: r.HookTimeout, Env: []string{"PKI_SSH_CERT=" + r.CertFile}}); err != nil {
			return fmt.Errorf("ssh host certificate renewed, but the hook failed: %w", err)
		}
	}
	return nil
}

// Run renews at two thirds of every lifetime until ctx ends, retrying
// failures with exponential backoff and full jitter.
func (r *SSHHostRenewer) Run(ctx context.Context) error {
	r.init()
	backoff := r.MinBackoff
	for {
		cert, _, err := r.load()
		wait := time.Duration(0)
		if err == nil {
			wait = sshRenewAt(cert).Sub(r.Now())
		}
		if err == nil && wait <= 0 {
			_, err = r.RenewIfDue(ctx, true)
			if err == nil {
				backoff = r.MinBackoff
				continue
			}
		}
		if err != nil {
			r.Logger.Warn("pki: ssh host certificate renewal failed; retrying", "file", r.CertFile, "err", err, "in", backoff)
			wait = time.Duration(rand.Int64N(int64(backoff)) + 1)
			backoff = min(backoff*2, r.MaxBackoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// sshPOPToken is step's SSHPOP token: a JWT signed by the host key, with
// the certificate in the "sshpop" header.
func sshPOPToken(caURL, provisioner string, cert *ssh.Certificate, key crypto.Signer, now time.Time) (string, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.Public().(type) {
	case ed25519.PublicKey:
		alg = jose.EdDSA
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return "", fmt.Errorf("sshpop token: unsupported curve")
		}
	case *rsa.PublicKey:
		alg = jose.RS256
	default:
		return "", fmt.Errorf("sshpop token: unsupported key %T", k)
	}
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader("sshpop", base64.StdEncoding.EncodeToString(cert.Marshal()))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("sshpop token: %w", err)
	}
	sub := cert.KeyId
	if sub == "" && len(cert.ValidPrincipals) > 0 {
		sub = cert.ValidPrincipals[0]
	}
	c := jose.Claims{
		ID:      randomID(),
		Issuer:  provisioner,
		Subject: sub,
		// step-ca finds the provisioner by the audience's fragment.
		Audience:  jose.Audience{strings.TrimSuffix(caURL, "/") + "/1.0/ssh/renew#sshpop/" + provisioner},
		IssuedAt:  jose.NewNumericDate(now),
		NotBefore: jose.NewNumericDate(now),
		Expiry:    jose.NewNumericDate(now.Add(5 * time.Minute)),
	}
	return jose.Signed(signer).Claims(c).CompactSerialize()
}
