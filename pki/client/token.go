package client

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.step.sm/crypto/jose"
)

// TokenInfo is what a one-time token says about itself. It is read without
// verifying the signature: the CA verifies; the host only uses it to build a
// matching certificate request and to explain refusals early.
type TokenInfo struct {
	ID          string
	Provisioner string // iss
	Subject     string
	SANs        []string
	Audience    []string
	NotBefore   time.Time
	Expiry      time.Time
	RootSHA     string // the root fingerprint the minter pinned, if any
}

type tokenClaims struct {
	jose.Claims
	SANs []string  `json:"sans,omitempty"`
	SHA  string    `json:"sha,omitempty"`
	Step *stepBody `json:"step,omitempty"`
}

type stepBody struct {
	SSH *sshBody `json:"ssh,omitempty"`
}

type sshBody struct {
	CertType    string   `json:"certType"`
	KeyID       string   `json:"keyID"`
	Principals  []string `json:"principals"`
	ValidAfter  string   `json:"validAfter,omitempty"`
	ValidBefore string   `json:"validBefore,omitempty"`
}

// ParseToken reads the claims of a one-time token without verifying it.
func ParseToken(token string) (*TokenInfo, error) {
	tok, err := jose.ParseSigned(strings.TrimSpace(token))
	if err != nil {
		return nil, fmt.Errorf("token: not a signed JWT: %w", err)
	}
	var c tokenClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return nil, fmt.Errorf("token: claims: %w", err)
	}
	info := &TokenInfo{ID: c.ID, Provisioner: c.Issuer, Subject: c.Subject, SANs: c.SANs, Audience: c.Audience, RootSHA: c.SHA}
	if c.NotBefore != nil {
		info.NotBefore = c.NotBefore.Time()
	}
	if c.Expiry != nil {
		info.Expiry = c.Expiry.Time()
	}
	if len(info.SANs) == 0 && info.Subject != "" {
		info.SANs = []string{info.Subject}
	}
	return info, nil
}

// Provisioner mints one-time tokens with a JWK provisioner's private key.
// Whoever holds it can obtain any certificate the CA's policy allows, so the
// key stays encrypted at rest and lives only on the CA host (and, for SSH
// user certificates, on the bastion).
type Provisioner struct {
	Name    string
	Key     *jose.JSONWebKey // private
	RootSHA string           // fingerprint of the CA root, embedded in tokens
	// Now is the clock tokens are dated by; nil = time.Now.
	Now func() time.Time
}

// LoadProvisioner decrypts the provisioner key written by `pki init`
// (a JWE holding the private JWK) with the password in passwordFile.
func LoadProvisioner(name, keyFile, passwordFile, rootSHA string) (*Provisioner, error) {
	pw, err := ReadPassword(passwordFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("provisioner key: %w", err)
	}
	jwk, err := jose.ParseKey(data, jose.WithPassword(pw))
	if err != nil {
		return nil, fmt.Errorf("provisioner key %s: %w", keyFile, err)
	}
	if jwk.IsPublic() {
		return nil, fmt.Errorf("provisioner key %s: holds a public key, want the private key", keyFile)
	}
	return &Provisioner{Name: name, Key: jwk, RootSHA: rootSHA}, nil
}

// ReadPassword reads a password file, dropping one trailing newline.
func ReadPassword(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	return b, nil
}

// TokenRequest describes a token for an X.509 certificate.
type TokenRequest struct {
	Subject string        // the certificate's common name, e.g. "web1"
	SANs    []string      // DNS names, IPs, e-mail addresses, URIs; default: Subject
	Roles   []string      // added as urn:rampart:role:<role> URI SANs
	TTL     time.Duration // how long the token is usable; 0 = 1h, negative is refused
	// AllowedRoles, when not nil, are the roles the CA accepts (its
	// roles: setting): a token for any other role would be refused at
	// bootstrap, after the host had spent it.
	AllowedRoles []string
}

var roleRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Token mints a single-use token for POST /1.0/sign at caURL. Everything
// the CA would refuse about the request itself (a name that is no DNS
// name, IP, e-mail address or URI; an unknown role; a non-positive
// lifetime) is refused here, when the operator can still fix it, rather
// than by the CA after the host spent the token.
func (p *Provisioner) Token(caURL string, r TokenRequest) (string, error) {
	if err := checkCN(r.Subject); err != nil {
		return "", fmt.Errorf("token: name %q: %w", r.Subject, err)
	}
	if r.TTL < 0 {
		return "", fmt.Errorf("token: ttl %s: must be positive", r.TTL)
	}
	sans := append([]string(nil), r.SANs...)
	if len(sans) == 0 {
		sans = []string{r.Subject}
	}
	for _, n := range sans {
		if err := CheckSAN(n); err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
	}
	for _, role := range r.Roles {
		if !roleRE.MatchString(role) {
			return "", fmt.Errorf("token: role %q: want a plain word such as agent", role)
		}
		if r.AllowedRoles != nil && !slices.Contains(r.AllowedRoles, role) {
			return "", fmt.Errorf("token: role %q: the CA accepts only %s (roles: in pki.yaml)", role, strings.Join(r.AllowedRoles, ", "))
		}
		sans = append(sans, RoleURI(role))
	}
	c := p.claims(caURL, "/1.0/sign", r.Subject, r.TTL)
	c.SANs = sans
	return p.sign(c)
}

// CheckSAN reports whether n can be a subject alternative name of a
// certificate from this CA: an IP address, a DNS name (RFC 1123 labels of
// letters, digits and inner hyphens, 1 to 63 characters each, 253 at most
// in all, optionally after "*."), an e-mail address, or a URI with a
// scheme (urn:rampart:role:agent, spiffe://…).
func CheckSAN(n string) error {
	switch {
	case n == "":
		return errors.New("empty name")
	case net.ParseIP(n) != nil:
		return nil
	case strings.ContainsRune(n, '@'):
		local, domain, _ := strings.Cut(n, "@")
		if local == "" || !printableASCII(local) || strings.ContainsAny(local, "<>") || checkDNSName(domain) != nil {
			return fmt.Errorf("%q: not an e-mail address", n)
		}
		return nil
	case strings.Contains(n, ":"):
		if u, err := url.Parse(n); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") && printableASCII(n) {
			return nil
		}
		return fmt.Errorf("%q: not a URI", n)
	}
	if err := checkDNSName(strings.TrimPrefix(n, "*.")); err != nil {
		return fmt.Errorf("%q: not a DNS name or IP address: %w", n, err)
	}
	return nil
}

// printableASCII: what an X.509 IA5String SAN can hold, without spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkDNSName applies RFC 1123's host name syntax.
func checkDNSName(n string) error {
	if n == "" || len(n) > 253 {
		return errors.New("length must be 1 to 253")
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 {
			return errors.New("each label must be 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("a label must not start or end with '-'")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not allowed (letters, digits, '-' and '.')", c)
			}
		}
	}
	return nil
}

// checkCN accepts a common name: printable, at most 64 bytes (X.520).
func checkCN(cn string) error {
	if cn == "" {
		return errors.New("empty name")
	}
	if len(cn) > 64 {
		return errors.New("longer than 64 bytes")
	}
	for _, c := range cn {
		if c < 0x20 || c == 0x7f {
			return errors.New("control character")
		}
	}
	return nil
}

// SSHRequest describes a token for an SSH certificate.
type SSHRequest struct {
	CertType   string // "user" or "host"
	KeyID      string
	Principals []string
	TTL        time.Duration // the certificate's lifetime; 0 = the CA's default
}

// SSHToken mints a single-use token for POST /1.0/ssh/sign.
func (p *Provisioner) SSHToken(caURL string, r SSHRequest) (string, error) {
	if r.CertType != "user" && r.CertType != "host" {
		return "", fmt.Errorf("ssh token: cert type %q: want user or host", r.CertType)
	}
	if len(r.Principals) == 0 {
		return "", fmt.Errorf("ssh token: no principals")
	}
	keyID := r.KeyID
	if keyID == "" {
		keyID = r.Principals[0]
	}
	c := p.claims(caURL, "/1.0/ssh/sign", keyID, 5*time.Minute)
	body := &sshBody{CertType: r.CertType, KeyID: keyID, Principals: r.Principals}
	if r.TTL > 0 {
		body.ValidBefore = r.TTL.String()
	}
	c.Step = &stepBody{SSH: body}
	return p.sign(c)
}

// RevokeToken mints a single-use token for POST /1.0/revoke of serial.
func (p *Provisioner) RevokeToken(caURL, serial string) (string, error) {
	return p.sign(p.claims(caURL, "/1.0/revoke", serial, 5*time.Minute))
}

func (p *Provisioner) claims(caURL, path, sub string, ttl time.Duration) tokenClaims {
	if ttl <= 0 {
		ttl = time.Hour
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now()
	return tokenClaims{
		Claims: jose.Claims{
			ID:        randomID(),
			Issuer:    p.Name,
			Subject:   sub,
			Audience:  jose.Audience{strings.TrimSuffix(caURL, "/") + path},
			IssuedAt:  jose.NewNumericDate(t),
			NotBefore: jose.NewNumericDate(t),
			Expiry:    jose.NewNumericDate(t.Add(ttl)),
		},
		SHA: p.RootSHA,
	}
}

func (p *Provisioner) sign(c tokenClaims) (string, error) {
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader("kid", p.Key.KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(p.Key.Algorithm), Key: p.Key.Key}, opts)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return jose.Signed(signer).Claims(c).CompactSerialize()
}

// renewToken is step's x5cInsecure renew token: signed by the certificate's
// own key, carrying the (possibly expired) chain. The CA accepts it only
// within its allowRenewalAfterExpiry policy and never for a revoked serial.
func renewToken(b *Bundle, aud string, now time.Time) (string, error) {
	var x5c []string
	for _, c := range b.Chain {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
	}
	alg, err := algFor(b.Leaf())
	if err != nil {
		return "", err
	}
	opts := new(jose.SignerOptions).WithType("JWT").WithHeader(jose.HeaderKey(jose.X5cInsecureKey), x5c)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: b.Key}, opts)
	if err != nil {
		return "", fmt.Errorf("renew token: %w", err)
	}
	c := jose.Claims{
		ID:        randomID(),
		Issuer:    "step-ca-client/1.0",
		Subject:   b.Leaf().Subject.CommonName,
		Audience:  jose.Audience{aud},
		IssuedAt:  jose.NewNumericDate(now),
		NotBefore: jose.NewNumericDate(now),
		Expiry:    jose.NewNumericDate(now.Add(5 * time.Minute)),
	}
	return jose.Signed(signer).Claims(c).CompactSerialize()
}

func algFor(c *x509.Certificate) (jose.SignatureAlgorithm, error) {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("renew token: unsupported key type %s", c.PublicKeyAlgorithm)
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}
