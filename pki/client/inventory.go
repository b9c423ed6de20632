package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

// InventoryPath is the CA route that lists what it issued (pki list). It
// answers only to a token signed by the CA's provisioner key
// ([Provisioner.InventoryToken]): the names and roles of a fleet are not
// for every host to read.
const InventoryPath = "/rampart/1.0/certificates"

// Issued is one X.509 certificate the CA issued, as its store records it
// (step-ca's x509_certs, x509_certs_data and revoked_x509_certs tables).
type Issued struct {
	Serial       string     `json:"serial"`
	Subject      string     `json:"subject"`
	Names        []string   `json:"names"` // DNS names and IPs
	Roles        []string   `json:"roles,omitempty"`
	Provisioner  string     `json:"provisioner,omitempty"`
	NotBefore    time.Time  `json:"not_before"`
	NotAfter     time.Time  `json:"not_after"`
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
}

// NewIssued describes c; provisioner and revocation come from the store.
func NewIssued(c *x509.Certificate) Issued {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return Issued{
		Serial:    c.SerialNumber.String(),
		Subject:   c.Subject.CommonName,
		Names:     names,
		Roles:     Roles(c),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
	}
}

// Certificate states, the values of rampart_pki_certificates{state}.
const (
	StateValid   = "valid"
	StateExpired = "expired"
	StateRevoked = "revoked" // revoked and not yet expired
)

// State is valid, expired or revoked at now. An expired certificate is
// "expired" whether or not it was revoked: it is refused either way.
func (c Issued) State(now time.Time) string {
	switch {
	case !now.Before(c.NotAfter):
		return StateExpired
	case c.Revoked:
		return StateRevoked
	}
	return StateValid
}

// InventoryFilter selects what pki list prints. The zero value selects
// every certificate that has not expired.
type InventoryFilter struct {
	All      bool          // include expired certificates
	Revoked  bool          // only revoked ones
	Expiring time.Duration // only valid ones whose NotAfter is within this of now
	Name     string        // glob (path.Match) over the subject and every name
}

// Validate reports a malformed glob.
func (f InventoryFilter) Validate() error {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return fmt.Errorf("--name %q: %w", f.Name, err)
		}
	}
	if f.Expiring < 0 {
		return fmt.Errorf("--expiring %s: must not be negative", f.Expiring)
	}
	return nil
}

// Match reports whether c is selected at now.
func (f InventoryFilter) Match(c Issued, now time.Time) bool {
	state := c.State(now)
	if state == StateExpired && !f.All {
		return false
	}
	if f.Revoked && !c.Revoked {
		return false
	}
	if f.Expiring > 0 && (state != StateValid || c.NotAfter.Sub(now) > f.Expiring) {
		return false
	}
	if f.Name != "" {
		hit := false
		for _, n := range append([]string{c.Subject}, c.Names...) {
			if ok, _ := path.Match(f.Name, n); ok {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// InventoryToken mints a short-lived token for [InventoryPath] at caURL.
func (p *Provisioner) InventoryToken(caURL string) (string, error) {
	return p.sign(p.claims(caURL, InventoryPath, "pki-list", 5*time.Minute))
}

// Inventory fetches every certificate the CA recorded (token from
// [Provisioner.InventoryToken]), ordered by NotAfter.
func (c *Client) Inventory(ctx context.Context, token string) ([]Issued, error) {
	u := c.base.String() + InventoryPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "rampart-pki")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Message, Path: InventoryPath}
	}
	var out struct {
		Certificates []Issued `json:"certificates"`
	}
	// No size limit beyond the stream: a fleet's inventory outgrows
	// the 1 MiB that bounds the CA's other answers.
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET %s: decode answer: %w", u, err)
	}
	return out.Certificates, nil
}

// AdminAudienceOK reports whether aud names route on one of the CA's
// names (any port: the CA may sit behind a load balancer).
func AdminAudienceOK(aud, route string, dnsNames []string) bool {
	rest, ok := strings.CutPrefix(aud, "https://")
	if !ok {
		return false
	}
	hostport, p, ok := strings.Cut(rest, "/")
	if !ok || "/"+p != route {
		return false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return slices.Contains(dnsNames, host)
}

// ACMEEABPath is the CA route that mints an ACME external account binding
// key (pki acme-eab), for a provisioner-signed token.
const ACMEEABPath = "/rampart/1.0/acme/eab"

// EAB is an external account binding key for the CA's ACME provisioner:
// give KID and HMACKey (base64url) to one ACME client (certbot --eab-kid
// --eab-hmac-key, acme-renew's eab, Caddy's eab). It binds to the first
// account that uses it.
type EAB struct {
	KID       string `json:"kid"`
	HMACKey   string `json:"hmac_key"`
	Reference string `json:"reference"`
}

// ACMEEABToken mints a short-lived token for [ACMEEABPath] at caURL.
func (p *Provisioner) ACMEEABToken(caURL string) (string, error) {
	return p.sign(p.claims(caURL, ACMEEABPath, "pki-acme-eab", 5*time.Minute))
}

// NewACMEEAB asks the CA for a fresh EAB key named reference (unique).
func (c *Client) NewACMEEAB(ctx context.Context, token, reference string) (*EAB, error) {
	var out EAB
	hdr := http.Header{"Authorization": {"Bearer " + token}}
	if err := doJSON(ctx, c.hc, http.MethodPost, c.base.String()+ACMEEABPath, map[string]string{"reference": reference}, &out, hdr); err != nil {
		return nil, err
	}
	return &out, nil
}
