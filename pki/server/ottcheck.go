package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/nosql/database"
	"go.step.sm/crypto/jose"
)

// statusError is a refusal of pki's own, before step-ca sees the request,
// with the HTTP status it is answered with.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// statusOf is the status a precheck refusal is answered with: its own, or
// 403.
func statusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return http.StatusForbidden
}

// checkTokenSignature verifies the signature of the one-time token in a
// request body ("ott") when it claims to come from one of this CA's JWK
// provisioners. step-ca records a token's ID as used (UseToken) before it
// verifies the signature, so a token altered by anyone (another name, a
// longer life) would spend the genuine token that carries the same ID
// while being refused itself. Checked here, a token whose signature fails
// never reaches step-ca, and the genuine one still works. Tokens of other
// provisioner types are left to step-ca.
func (s *Server) checkTokenSignature(body []byte) error {
	var req struct {
		OTT string `json:"ott"`
	}
	if json.Unmarshal(body, &req) != nil || req.OTT == "" {
		return nil
	}
	tok, err := jose.ParseSigned(req.OTT)
	if err != nil || len(tok.Headers) != 1 {
		return nil // step-ca refuses what it cannot parse, before UseToken
	}
	var claims jose.Claims
	if tok.UnsafeClaimsWithoutVerification(&claims) != nil {
		return nil
	}
	// The provisioner step-ca would pick for this token (iss and kid).
	p, err := s.auth.LoadProvisionerByToken(tok, &claims)
	if err != nil {
		return nil // step-ca answers "provisioner not found"
	}
	prov, ok := p.(*provisioner.JWK)
	if !ok || prov.Key == nil {
		return nil
	}
	var verified jose.Claims
	if err := tok.Claims(prov.Key.Public(), &verified); err != nil {
		return &statusError{http.StatusUnauthorized, fmt.Sprintf("token signature invalid: not signed by provisioner %q (altered or forged); it was not accepted and spent nothing", prov.Name)}
	}
	return nil
}

// checkRevokeKnown refuses, with 404, the revocation of a serial this CA
// never issued: step-ca would record it as revoked and answer success, so
// a mistyped serial said "revoked" while the certificate meant stayed
// valid.
func (s *Server) checkRevokeKnown(body []byte) error {
	var req struct {
		Serial string `json:"serial"`
	}
	if json.Unmarshal(body, &req) != nil || req.Serial == "" || s.store == nil {
		return nil // step-ca answers 400
	}
	serial := strings.TrimSpace(req.Serial)
	// step-ca keys certificates by decimal serial.
	if n, ok := new(big.Int).SetString(serial, 0); ok {
		serial = n.String()
	}
	_, err := s.store.Get([]byte("x509_certs"), []byte(serial))
	if database.IsErrNotFound(err) {
		return &statusError{http.StatusNotFound, fmt.Sprintf("no certificate with serial %s was issued by this CA: nothing revoked", req.Serial)}
	}
	return nil
}
