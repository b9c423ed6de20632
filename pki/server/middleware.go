package server

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/db"
	"go.step.sm/crypto/jose"
	"golang.org/x/crypto/ssh"

	apilog "github.com/smallstep/certificates/api/log"

	"github.com/rampart-sec/rampart/pkg/pemcert"
	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// maxBody bounds every request body the CA reads.
const maxBody = 1 << 20

// recorder buffers a response so that refusals can be explained (step-ca
// hides most reasons behind a generic 401) and issuances audited.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	err    error // what the step handler reported through its error logger
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// routeOf maps a path onto a bounded set of metric labels.
func routeOf(p string) string {
	p = strings.TrimPrefix(p, "/1.0")
	switch {
	case strings.HasPrefix(p, "/root/"):
		return "/root/{sha}"
	case strings.HasPrefix(p, "/provisioners"):
		return "/provisioners"
	case strings.HasPrefix(p, "/ssh/config"):
		return "/ssh/config"
	}
	switch p {
	case "/version", "/health", "/sign", "/renew", "/rekey", "/revoke", "/crl", "/roots", "/roots.pem",
		"/intermediates", "/intermediates.pem", "/federation", "/ssh/sign", "/ssh/renew", "/ssh/revoke",
		"/ssh/rekey", "/ssh/roots", "/ssh/federation", "/ssh/check-host", "/ssh/hosts", "/ssh/bastion":
		return p
	}
	return "other"
}

func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := routeOf(r.URL.Path)
		ctx := authority.NewContext(r.Context(), s.auth)
		if d := s.auth.GetDatabase(); d != nil {
			ctx = db.NewContext(ctx, d)
		}
		ctx = apilog.WithErrorLogger(ctx, func(w http.ResponseWriter, _ *http.Request, err error) {
			if rec, ok := w.(*recorder); ok {
				rec.err = err
			}
		})
		var body []byte
		if r.Body != nil && r.Method == http.MethodPost {
			var err error
			body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil || len(body) > maxBody {
				s.refuse(w, r, route, start, http.StatusRequestEntityTooLarge, "request body too large or unreadable", err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if err := s.precheck(r, route, body); err != nil {
			s.refuse(w, r, route, start, statusOf(err), err.Error(), err)
			return
		}
		rec := &recorder{header: http.Header{}}
		next.ServeHTTP(rec, r.WithContext(ctx))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if rec.status >= 400 {
			rec.status = refusalStatus(rec.status, rec.err)
			msg := explain(rec.err, rec.body.Bytes())
			s.logRefusal(r, route, rec.status, msg, rec.err)
			if msg != "" {
				rec.body.Reset()
				_ = json.NewEncoder(&rec.body).Encode(map[string]any{"status": rec.status, "message": msg})
				rec.header.Set("Content-Type", "application/json")
				rec.header.Del("Content-Length")
			}
		} else if rec.status/100 == 2 {
			s.auditIssued(r, route, body, rec.body.Bytes())
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		s.m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, route string, start time.Time, status int, msg string, err error) {
	s.logRefusal(r, route, status, msg, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "message": msg})
	s.m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	s.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (s *Server) logRefusal(r *http.Request, route string, status int, msg string, err error) {
	attrs := []any{"route", route, "status", status, "remote", r.RemoteAddr, "reason", msg}
	if err != nil {
		if err.Error() != msg { // pki's own refusals are their message
			attrs = append(attrs, "err", err.Error())
		}
		var detailed interface{ logAttrs() []any }
		if errors.As(err, &detailed) {
			attrs = append(attrs, detailed.logAttrs()...)
		}
	}
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	s.logger.Log(r.Context(), level, "pki: request refused", attrs...)
}

// explain turns step-ca's internal reason into a message the requester can
// act on. It only names outcomes the requester already controls (its token,
// its names, its certificate); everything else keeps step-ca's wording.
func explain(err error, body []byte) string {
	var reason string
	if err != nil {
		reason = err.Error()
	}
	var resp struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &resp)
	l := strings.ToLower(reason)
	switch {
	case strings.Contains(l, "token already used"):
		return "token already used: a one-time token works once; mint a new one with pki token"
	case strings.Contains(l, "token is expired"):
		return "token expired: mint a new one with pki token"
	case strings.Contains(l, "token not valid yet"), strings.Contains(l, "validation failed, token not valid yet"):
		return "token not valid yet (check the clocks)"
	case strings.Contains(l, "does not contain the valid"):
		if i := strings.Index(l, "certificate request does not contain"); i >= 0 {
			return "token not valid for the requested names: " + reason[i:]
		}
		return "token not valid for the requested names"
	case strings.Contains(l, "audience"):
		return "token was minted for another CA URL (aud)"
	case strings.Contains(l, "provisioner not found"):
		return "token not signed by a provisioner of this CA"
	case strings.Contains(l, "has been revoked"):
		return "certificate revoked: renewal refused; join again with a fresh token"
	case strings.Contains(l, "error parsing"), strings.Contains(l, "compact jws format must have three parts"):
		return "malformed token"
	case strings.Contains(l, "error in cryptographic primitive"):
		return "token signature invalid"
	case strings.Contains(l, "renew is disabled"), strings.Contains(l, "renewal after expiry"), strings.Contains(l, "is expired"),
		strings.Contains(l, "certificate expired on"): // step's DefaultAuthorizeRenew
		return "certificate expired and renewal after expiry is not allowed: join again with a fresh token"
	}
	return resp.Message
}

// refusalStatus turns step-ca's 500 for a renew token that is the
// requester's own fault (signed by a key other than the certificate's, or
// minted for another CA) into 401: the CA is fine, and a 500 would page
// whoever watches it and log at error level for every such attempt.
func refusalStatus(status int, err error) int {
	if status != http.StatusInternalServerError || err == nil {
		return status
	}
	l := strings.ToLower(err.Error())
	if strings.Contains(l, "error in cryptographic primitive") || strings.Contains(l, "invalid audience claim") {
		return http.StatusUnauthorized
	}
	return status
}

// precheck applies, before step-ca sees the request: the signature of a
// one-time token (so an altered token never spends the genuine one), the
// name policy, the limit on how long ago a renewed certificate may have
// expired, and that a revoked serial was issued here.
func (s *Server) precheck(r *http.Request, route string, body []byte) error {
	if err := s.checkTokenSignature(body); err != nil {
		return err
	}
	switch route {
	case "/revoke":
		return s.checkRevokeKnown(body)
	case "/renew", "/rekey":
		old, auth := renewTokenLeaf(r), "renew-token"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			old, auth = r.TLS.PeerCertificates[0], "mtls" // what step-ca renews when both are given
		}
		if old == nil {
			return nil // step-ca answers 400, or 401 for a token it cannot parse either
		}
		if err := s.checkExpiredFor(old, auth); err != nil {
			return err
		}
		if err := s.policy.checkCert(old); err != nil {
			return fmt.Errorf("renewal of serial %s: %w", old.SerialNumber, err)
		}
	case "/sign":
		var req struct {
			CSR string `json:"csr"`
		}
		if json.Unmarshal(body, &req) != nil {
			return nil // step-ca answers 400
		}
		blk, _ := pem.Decode([]byte(req.CSR))
		if blk == nil {
			return nil
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			return nil
		}
		return s.policy.check(csr)
	case "/ssh/sign":
		var req struct {
			OTT string `json:"ott"`
		}
		if json.Unmarshal(body, &req) != nil {
			return nil
		}
		certType, principals := sshTokenRequest(req.OTT)
		if certType == "host" {
			return s.policy.checkSSHHost(principals)
		}
	}
	return nil
}

// errExpiredTooLong refuses the renewal of a certificate that expired
// longer ago than leaf.renewal_after_expiry_max. step-ca's
// allowRenewalAfterExpiry has no such limit: without it a certificate
// expired a year ago, or its stolen key, would renew forever.
type errExpiredTooLong struct {
	serial, subject, auth string
	notAfter              time.Time
	ago, limit            time.Duration
}

func (e *errExpiredTooLong) Error() string {
	return fmt.Sprintf("renewal of serial %s: certificate expired too long ago: it expired at %s (%s ago) and this CA renews "+
		"certificates at most %s after they expire (leaf.renewal_after_expiry_max); to recover, mint a fresh token on the CA "+
		"(pki token %s) and run pki renew --token-file FILE",
		e.serial, e.notAfter.UTC().Format(time.RFC3339), days(e.ago), ca.RenewalWindow(e.limit), e.subject)
}

// logAttrs adds what the refusal log line needs to be searched by.
func (e *errExpiredTooLong) logAttrs() []any {
	return []any{"serial", e.serial, "subject", e.subject, "not_after", e.notAfter.UTC().Format(time.RFC3339),
		"expired_for", days(e.ago), "renewal_after_expiry_max", ca.RenewalWindow(e.limit).String(), "auth", e.auth}
}

// checkExpiredFor refuses a certificate that expired longer ago than the
// configured limit. The certificate in a renew token is not verified yet:
// that is safe because this check can only refuse, and step-ca renews the
// very certificate checked here, after verifying it.
func (s *Server) checkExpiredFor(c *x509.Certificate, auth string) error {
	if s.renewalAfterExpiryMax <= 0 { // renewal after expiry is off: step-ca refuses every expired certificate
		return nil
	}
	ago := s.clock().Sub(c.NotAfter)
	if ago <= s.renewalAfterExpiryMax {
		return nil
	}
	return &errExpiredTooLong{serial: c.SerialNumber.String(), subject: c.Subject.CommonName, auth: auth,
		notAfter: c.NotAfter, ago: ago, limit: s.renewalAfterExpiryMax}
}

func (s *Server) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// days writes a long duration as days and hours ("396d2h"), a short one
// in Go's notation to the second.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day {
		return d.Truncate(time.Second).String()
	}
	return fmt.Sprintf("%dd%dh", d/day, (d%day)/time.Hour)
}

func sshTokenRequest(tok string) (string, []string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil
	}
	var c struct {
		Step struct {
			SSH struct {
				CertType   string   `json:"certType"`
				Principals []string `json:"principals"`
			} `json:"ssh"`
		} `json:"step"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return "", nil
	}
	return c.Step.SSH.CertType, c.Step.SSH.Principals
}

// stepProvisionerOID is step-ca's certificate extension naming the
// provisioner that authorized the certificate.
var stepProvisionerOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 37476, 9000, 64, 1}

func provisionerOf(c *x509.Certificate) string {
	for _, e := range c.Extensions {
		if !e.Id.Equal(stepProvisionerOID) {
			continue
		}
		var v struct {
			Type         int
			Name         []byte
			CredentialID []byte
			Pairs        []string `asn1:"optional,omitempty"`
		}
		if _, err := asn1.Unmarshal(e.Value, &v); err == nil {
			return string(v.Name)
		}
	}
	return ""
}

// renewTokenLeaf returns the certificate in the x5cInsecure header of the
// renew token a host whose certificate expired authenticates with (step-ca
// reads it only when the request has no client certificate). It is read
// without verification. The token is found exactly as step-ca's
// getPeerCertificate finds it (after the first "Bearer " anywhere in the
// header, not only at its start): a header step-ca reads differently would
// let a renewal past every check made here.
func renewTokenLeaf(r *http.Request) *x509.Certificate {
	parts := strings.SplitN(r.Header.Get("Authorization"), "Bearer ", 2)
	if len(parts) != 2 {
		return nil
	}
	jwt, err := jose.ParseSigned(parts[1])
	if err != nil {
		return nil
	}
	chain, err := jose.GetX5cInsecureHeader(jwt)
	if err != nil || len(chain) == 0 {
		return nil
	}
	return chain[0]
}

// auditIssued writes one line per certificate: who asked (address, token
// or peer certificate), which provisioner authorized it, for which names,
// with which serial and lifetime.
func (s *Server) auditIssued(r *http.Request, route string, reqBody, respBody []byte) {
	op := map[string]string{"/sign": "x509-sign", "/renew": "x509-renew", "/rekey": "x509-rekey", "/ssh/sign": "ssh-sign", "/ssh/renew": "ssh-renew", "/ssh/rekey": "ssh-rekey", "/revoke": "x509-revoke"}[route]
	if op == "" {
		return
	}
	attrs := []any{"op", op, "requester", r.RemoteAddr}
	var req struct {
		OTT    string `json:"ott"`
		Serial string `json:"serial"`
	}
	_ = json.Unmarshal(reqBody, &req)
	tokProv := ""
	if req.OTT != "" {
		if info, err := client.ParseToken(req.OTT); err == nil {
			attrs = append(attrs, "token_id", info.ID, "token_subject", info.Subject)
			tokProv = info.Provisioner
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		p := r.TLS.PeerCertificates[0]
		attrs = append(attrs, "peer", p.Subject.CommonName, "peer_serial", p.SerialNumber.String())
	} else if p := renewTokenLeaf(r); p != nil && (op == "x509-renew" || op == "x509-rekey") {
		attrs = append(attrs, "peer", p.Subject.CommonName, "peer_serial", p.SerialNumber.String(),
			"peer_not_after", p.NotAfter.UTC(), "auth", "renew-token")
	}
	switch {
	case op == "x509-revoke":
		attrs = append(attrs, "provisioner", tokProv, "serial", req.Serial)
	case strings.HasPrefix(op, "x509"):
		var resp struct {
			Crt string `json:"crt"`
		}
		_ = json.Unmarshal(respBody, &resp)
		certs, err := pemcert.Parse([]byte(resp.Crt))
		if err != nil {
			return
		}
		c := certs[0]
		var names []string
		names = append(names, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
		for _, u := range c.URIs {
			names = append(names, u.String())
		}
		attrs = append(attrs, "provisioner", provisionerOf(c), "subject", c.Subject.CommonName, "names", names,
			"serial", c.SerialNumber.String(), "not_before", c.NotBefore.UTC(), "not_after", c.NotAfter.UTC(),
			"lifetime", c.NotAfter.Sub(c.NotBefore).String())
	default:
		var resp struct {
			Crt string `json:"crt"`
		}
		_ = json.Unmarshal(respBody, &resp)
		der, err := base64.StdEncoding.DecodeString(resp.Crt)
		if err != nil {
			return
		}
		k, err := ssh.ParsePublicKey(der)
		if err != nil {
			return
		}
		c, ok := k.(*ssh.Certificate)
		if !ok {
			return
		}
		typ := "user"
		if c.CertType == ssh.HostCert {
			typ = "host"
		}
		va, vb := time.Unix(int64(c.ValidAfter), 0).UTC(), time.Unix(int64(c.ValidBefore), 0).UTC()
		attrs = append(attrs, "provisioner", tokProv, "ssh_type", typ, "key_id", c.KeyId, "names", c.ValidPrincipals,
			"serial", strconv.FormatUint(c.Serial, 10), "not_before", va, "not_after", vb, "lifetime", vb.Sub(va).String())
	}
	s.audit.Info("pki: issued", attrs...)
}
