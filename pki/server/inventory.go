package server

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/nosql/database"
	"go.step.sm/crypto/jose"

	"github.com/rampart-sec/rampart/pki/client"
)

// Inventory lists every X.509 certificate recorded in a step-ca store:
// x509_certs (serial -> DER), x509_certs_data (serial -> the provisioner
// that authorized it) and revoked_x509_certs (serial -> when and why).
// The CA's own TLS certificates are not recorded there, as in step-ca.
// The result is ordered by NotAfter, then serial.
func Inventory(store database.DB) ([]client.Issued, error) {
	certs, err := store.List([]byte("x509_certs"))
	if err != nil && !database.IsErrNotFound(err) {
		return nil, fmt.Errorf("inventory: list x509_certs: %w", err)
	}
	provs := map[string]string{}
	data, err := store.List([]byte("x509_certs_data"))
	if err != nil && !database.IsErrNotFound(err) {
		return nil, fmt.Errorf("inventory: list x509_certs_data: %w", err)
	}
	for _, e := range data {
		var d struct {
			Provisioner *struct {
				Name string `json:"name"`
			} `json:"provisioner"`
		}
		if json.Unmarshal(e.Value, &d) == nil && d.Provisioner != nil {
			provs[string(e.Key)] = d.Provisioner.Name
		}
	}
	type revocation struct {
		RevokedAt time.Time
		Reason    string
	}
	revoked := map[string]revocation{}
	rev, err := store.List([]byte("revoked_x509_certs"))
	if err != nil && !database.IsErrNotFound(err) {
		return nil, fmt.Errorf("inventory: list revoked_x509_certs: %w", err)
	}
	for _, e := range rev {
		var r revocation
		_ = json.Unmarshal(e.Value, &r) // the key alone says it is revoked
		revoked[string(e.Key)] = r
	}
	out := make([]client.Issued, 0, len(certs))
	for _, e := range certs {
		c, err := x509.ParseCertificate(e.Value)
		if err != nil {
			return nil, fmt.Errorf("inventory: x509_certs serial %s: %w", e.Key, err)
		}
		is := client.NewIssued(c)
		is.Provisioner = provs[string(e.Key)]
		if is.Provisioner == "" {
			is.Provisioner = provisionerOf(c)
		}
		if r, ok := revoked[string(e.Key)]; ok {
			is.Revoked = true
			is.RevokeReason = r.Reason
			if !r.RevokedAt.IsZero() {
				at := r.RevokedAt.UTC()
				is.RevokedAt = &at
			}
		}
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b client.Issued) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out, nil
}

// serveInventory answers pki list: every recorded certificate, to a
// bearer token signed by the provisioner key for this route.
func (s *Server) serveInventory(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	if err := s.checkAdminToken(r, client.InventoryPath); err != nil {
		s.logger.Warn("pki: request refused", "route", client.InventoryPath, "status", http.StatusUnauthorized, "remote", r.RemoteAddr, "reason", err.Error())
		writeJSONError(w, http.StatusUnauthorized, err.Error())
		return
	}
	certs, err := Inventory(s.store)
	if err != nil {
		s.logger.Error("pki: inventory", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "inventory: store error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"certificates": certs})
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "message": msg})
}

// checkAdminToken accepts a JWT signed by the provisioner key, for route
// on one of the CA's names, unexpired, and never seen before: what pki's
// own CA-host verbs (list, acme-eab) authenticate with.
func (s *Server) checkAdminToken(r *http.Request, route string) error {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errors.New("missing bearer token (pki list and pki acme-eab mint one with the provisioner key)")
	}
	tok, err := jose.ParseSigned(raw)
	if err != nil {
		return errors.New("malformed token")
	}
	key, err := readJWK(s.cfg.Path(s.cfg.Provisioner.PublicKey))
	if err != nil {
		return err
	}
	var c jose.Claims
	if err := tok.Claims(key.Key, &c); err != nil {
		return errors.New("token not signed by this CA's provisioner key")
	}
	if err := c.ValidateWithLeeway(jose.Expected{Issuer: s.cfg.Provisioner.Name, Time: s.clock()}, time.Minute); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if len(c.Audience) != 1 || !client.AdminAudienceOK(c.Audience[0], route, s.cfg.DNSNames) {
		return fmt.Errorf("token audience %v: want https://<one of %v>%s", c.Audience, s.cfg.DNSNames, route)
	}
	if c.Expiry == nil || c.ID == "" {
		return errors.New("token lacks exp or jti")
	}
	_, fresh, err := s.store.CmpAndSwap([]byte("used_ott"), []byte("rampart-admin:"+c.ID), nil, []byte(raw))
	if err != nil {
		return fmt.Errorf("record token: %w", err)
	}
	if !fresh {
		return errors.New("token already used")
	}
	return nil
}

// inventoryCollector exports rampart_pki_certificates{state} from the
// store at scrape time, at most once per refresh (a scrape every few
// seconds must not read the whole store each time).
type inventoryCollector struct {
	store   database.DB
	now     func() time.Time
	refresh time.Duration
	desc    *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[string]float64
}

func newInventoryCollector(store database.DB, now func() time.Time) *inventoryCollector {
	return &inventoryCollector{
		store: store, now: now, refresh: 15 * time.Second,
		desc: prometheus.NewDesc("rampart_pki_certificates",
			"X.509 certificates recorded in the CA's store, by state (valid, revoked: revoked and not expired, expired).",
			[]string{"state"}, nil),
	}
}

func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.counts == nil || now.Sub(c.at) >= c.refresh {
		certs, err := Inventory(c.store)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
		c.counts = map[string]float64{client.StateValid: 0, client.StateRevoked: 0, client.StateExpired: 0}
		for _, is := range certs {
			c.counts[is.State(now)]++
		}
		c.at = now
	}
	for state, n := range c.counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, state)
	}
}
