package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
		mux.ServeHTTP(w, r.WithContext(base(r.Context())))
	}), nil
}
