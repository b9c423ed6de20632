package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/smallstep/certificates/acme"
	acmeAPI "github.com/smallstep/certificates/acme/api"
	acmeNoSQL "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/authority"
	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/policy"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// applyACME adds step-ca's ACME provisioner: the configured challenges,
// certificates of the configured lifetime (clients may ask for less), and
// the CA's name policy as the provisioner's own x509 policy, which
// step-ca enforces when an order is created and again when it is signed.
func applyACME(c *ca.Config, sc *stepconfig.Config) {
	if !c.ACME.Enabled {
		return
	}
	life := time.Duration(c.ACME.Lifetime)
	minDur := min(time.Duration(c.Leaf.Min), life)
	no := false
	p := &provisioner.ACME{
		ID:         acmeProvisionerID(c.ACME.Name),
		Type:       "ACME",
		Name:       c.ACME.Name,
		RequireEAB: c.ACME.RequireEAB,
		Claims: &provisioner.Claims{
			MinTLSDur:               &provisioner.Duration{Duration: minDur},
			MaxTLSDur:               &provisioner.Duration{Duration: life},
			DefaultTLSDur:           &provisioner.Duration{Duration: life},
			EnableSSHCA:             &no,
			AllowRenewalAfterExpiry: &no,
		},
	}
	for _, ch := range c.ACME.Challenges {
		p.Challenges = append(p.Challenges, provisioner.ACMEChallenge(ch))
	}
	if len(c.Policy.DNS) > 0 || len(c.Policy.IP) > 0 {
		p.Options = &provisioner.Options{X509: &provisioner.X509Options{
			AllowedNames: &policy.X509NameOptions{DNSDomains: c.Policy.DNS, IPRanges: c.Policy.IP},
		}}
	}
	sc.AuthorityConfig.Provisioners = append(sc.AuthorityConfig.Provisioners, p)
}

// acmeHandler serves step-ca's ACME API under /acme/<name>/ with step's
// ACME tables in the CA's own store (so replicas on one PostgreSQL share
// accounts, orders and nonces).
func (s *Server) acmeHandler() (http.Handler, error) {
	adb, err := acmeNoSQL.New(s.store)
	if err != nil {
		return nil, fmt.Errorf("acme: store: %w", err)
	}
	u, err := url.Parse(s.cfg.URL)
	if err != nil {
		return nil, err
	}
	linker := acme.NewLinker(u.Host, "acme")
	mux := chi.NewRouter()
	mux.Route("/acme", func(r chi.Router) { acmeAPI.Route(r) })
	base := func(ctx context.Context) context.Context {
		ctx = authority.NewContext(ctx, s.auth)
		if d := s.auth.GetDatabase(); d != nil {
			ctx = db.NewContext(ctx, d)
		}
		return acme.NewContext(ctx, adb, acme.NewClient(), linker, nil)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == client.ACMEEABPath {
			s.serveEAB(w, r, adb)
			return
		}
		mux.ServeHTTP(w, r.WithContext(base(r.Context())))
	}), nil
}

// serveEAB mints an external account binding key for the ACME
// provisioner (pki acme-eab NAME), for a provisioner-signed token.
func (s *Server) serveEAB(w http.ResponseWriter, r *http.Request, adb acme.DB) {
	if r.Method != http.MethodPost {
		writeJSONError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if err := s.checkAdminToken(r, client.ACMEEABPath); err != nil {
		s.logger.Warn("pki: request refused", "route", client.ACMEEABPath, "status", http.StatusUnauthorized, "remote", r.RemoteAddr, "reason", err.Error())
		writeJSONError(w, http.StatusUnauthorized, err.Error())
		return
	}
	var req struct {
		Reference string `json:"reference"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Reference == "" {
		writeJSONError(w, http.StatusBadRequest, "want {\"reference\": NAME}")
		return
	}
	provID := acmeProvisionerID(s.cfg.ACME.Name)
	if k, err := adb.GetExternalAccountKeyByReference(r.Context(), provID, req.Reference); err == nil && k != nil {
		writeJSONError(w, http.StatusConflict, fmt.Sprintf("an EAB key named %q exists already (kid %s)", req.Reference, k.ID))
		return
	}
	k, err := adb.CreateExternalAccountKey(r.Context(), provID, req.Reference)
	if err != nil {
		s.logger.Error("pki: create ACME EAB key", "reference", req.Reference, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "could not create the EAB key")
		return
	}
	s.audit.Info("pki: acme eab key created", "op", "acme-eab", "kid", k.ID, "reference", k.Reference, "requester", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(client.EAB{KID: k.ID, HMACKey: base64.RawURLEncoding.EncodeToString(k.HmacKey), Reference: k.Reference})
}

// acmeProvisionerID is the ID the ACME provisioner is configured with:
// step-ca looks EAB keys up by the provisioner's ID field, which it
// leaves empty unless set.
func acmeProvisionerID(name string) string { return "acme/" + name }

// acmeAuditMeter is the authority's Meter: the metrics, plus one audit
// line per certificate signed for an ACME order (those requests bypass
// the token routes whose answers the audit layer reads).
type acmeAuditMeter struct {
	*serverMetrics
	s *Server
}

func (m *acmeAuditMeter) X509Signed(chain []*x509.Certificate, p provisioner.Interface, err error) {
	m.serverMetrics.X509Signed(chain, p, err)
	if err != nil || len(chain) == 0 || p == nil || p.GetType() != provisioner.TypeACME || m.s.audit == nil {
		return
	}
	c := chain[0]
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	m.s.audit.Info("pki: issued", "op", "acme-sign", "provisioner", p.GetName(), "subject", c.Subject.CommonName, "names", names,
		"serial", c.SerialNumber.String(), "not_before", c.NotBefore.UTC(), "not_after", c.NotAfter.UTC(),
		"lifetime", c.NotAfter.Sub(c.NotBefore).String())
}
