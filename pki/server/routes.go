package server

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// applyExtras adds to step-ca's configuration what pki.yaml turns on
// beyond issuance: the CRL, the ACME and SSHPOP provisioners.
func applyExtras(c *ca.Config, sc *stepconfig.Config) error {
	if err := publishEncryptedKey(c, sc); err != nil {
		return err
	}
	applyCRL(c, sc)
	applyACME(c, sc)
	applySSHPOP(c, sc)
	return nil
}

// startExtras starts what pki adds around step-ca's API: the inventory
// gauge (and, when configured, the ACME and CRL machinery).
func (s *Server) startExtras(reg prometheus.Registerer) error {
	if err := reg.Register(newInventoryCollector(s.store, s.clock)); err != nil {
		if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
			return err
		}
	}
	if s.cfg.ACME.Enabled {
		h, err := s.acmeHandler()
		if err != nil {
			return err
		}
		s.acme = h
	}
	return nil
}

// routeExtras serves pki's own routes (inventory, CRL, ACME) in front of
// step-ca's API, which goes through wrap's refusal and audit layer.
func (s *Server) routeExtras(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h http.HandlerFunc
		route := r.URL.Path
		switch {
		case r.URL.Path == client.InventoryPath:
			h = s.serveInventory
		case r.URL.Path == "/crl" || r.URL.Path == ca.CRLPath:
			h, route = s.serveCRL, "/crl"
		case s.acme != nil && r.URL.Path == client.ACMEEABPath:
			h = s.acme.ServeHTTP
		case s.acme != nil && strings.HasPrefix(r.URL.Path, "/acme/"):
			h, route = s.acme.ServeHTTP, acmeRoute(r.URL.Path)
		}
		if h == nil && r.Method == http.MethodPost && (r.URL.Path == "/ssh/renew" || r.URL.Path == "/1.0/ssh/renew") {
			if err := s.precheckSSHRenew(r); err != nil {
				h = func(w http.ResponseWriter, r *http.Request) {
					s.logger.Warn("pki: request refused", "route", "/ssh/renew", "status", http.StatusForbidden, "remote", r.RemoteAddr, "reason", err.Error())
					writeJSONError(w, http.StatusForbidden, err.Error())
				}
				route = "/ssh/renew"
			}
		}
		if h == nil {
			api.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, maxBody) // these routes skip wrap, which bounds the others
		}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		s.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// acmeRoute is the metric label of an ACME request: the resource kind
// (/acme/{provisioner}/new-order -> /acme/new-order), never an ID.
func acmeRoute(p string) string {
	parts := strings.Split(strings.TrimPrefix(p, "/acme/"), "/")
	if len(parts) < 2 {
		return "/acme/other"
	}
	switch parts[1] {
	case "directory", "new-nonce", "new-account", "new-order", "revoke-cert", "key-change", "account", "order",
		"authz", "challenge", "certificate", "renewalInfo", "orders":
		return "/acme/" + parts[1]
	}
	return "/acme/other"
}

// publishEncryptedKey gives the main JWK provisioner its encrypted key
// (provisioner.publish_encrypted_key), which step-ca then serves so the
// step CLI can mint tokens itself given the password.
func publishEncryptedKey(c *ca.Config, sc *stepconfig.Config) error {
	if !c.Provisioner.PublishEncryptedKey {
		return nil
	}
	b, err := os.ReadFile(c.Path(c.Provisioner.Key))
	if err != nil {
		return fmt.Errorf("provisioner.publish_encrypted_key: %w", err)
	}
	for _, p := range sc.AuthorityConfig.Provisioners {
		if jwk, ok := p.(*provisioner.JWK); ok && jwk.Name == c.Provisioner.Name {
			jwk.EncryptedKey = strings.TrimSpace(string(b))
			return nil
		}
	}
	return fmt.Errorf("provisioner.publish_encrypted_key: no JWK provisioner %q", c.Provisioner.Name)
}
