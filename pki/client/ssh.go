package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/crypto/ssh"
)

// SignSSH sends pub with an SSH token (see [Provisioner.SSHToken]) to
// POST /1.0/ssh/sign and returns the certificate. The CA takes cert type,
// principals and lifetime from the token.
func (c *Client) SignSSH(ctx context.Context, token string, pub ssh.PublicKey) (*ssh.Certificate, error) {
	req := map[string]any{
		"publicKey": pub.Marshal(), // []byte: JSON base64, as step-ca expects
		"ott":       token,
	}
	var resp struct {
		Crt string `json:"crt"`
	}
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base.String()+"/1.0/ssh/sign", req, &resp, nil); err != nil {
		return nil, err
	}
	der, err := base64.StdEncoding.DecodeString(resp.Crt)
	if err != nil {
		return nil, fmt.Errorf("ssh sign: CA answer: %w", err)
	}
	k, err := ssh.ParsePublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("ssh sign: CA answer: %w", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("ssh sign: CA answered with a %s, not a certificate", k.Type())
	}
	return cert, nil
}

// SignSSHUser obtains a user certificate for principal valid for ttl (the
// bastion uses 5m for a recorded session). It mints the token with prov, so
// the caller must hold the provisioner key.
func (c *Client) SignSSHUser(ctx context.Context, prov *Provisioner, pub ssh.PublicKey, principal string, ttl time.Duration) (*ssh.Certificate, error) {
	tok, err := prov.SSHToken(c.base.String(), SSHRequest{CertType: "user", Principals: []string{principal}, TTL: ttl})
	if err != nil {
		return nil, err
	}
	cert, err := c.SignSSH(ctx, tok, pub)
	if err != nil {
		return nil, fmt.Errorf("ssh user certificate for %q: %w", principal, err)
	}
	return cert, nil
}

// SignSSHHost obtains a host certificate for the given host names.
func (c *Client) SignSSHHost(ctx context.Context, prov *Provisioner, pub ssh.PublicKey, hosts []string, ttl time.Duration) (*ssh.Certificate, error) {
	tok, err := prov.SSHToken(c.base.String(), SSHRequest{CertType: "host", Principals: hosts, TTL: ttl})
	if err != nil {
		return nil, err
	}
	cert, err := c.SignSSH(ctx, tok, pub)
	if err != nil {
		return nil, fmt.Errorf("ssh host certificate for %v: %w", hosts, err)
	}
	return cert, nil
}
