package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strconv"
	"time"

	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/rampart-sec/rampart/pki/ca"
)

// applyCRL turns on step-ca's CRL: signed by the intermediate, generated
// at start, on every revocation and every renew_period, with the
// issuing distribution point set to the URL hosts use (step-ca would
// otherwise name port 443).
func applyCRL(c *ca.Config, sc *stepconfig.Config) {
	if !c.CRL.On() {
		return
	}
	sc.CRL = &stepconfig.CRLConfig{
		Enabled:          true,
		GenerateOnRevoke: true,
		CacheDuration:    &provisioner.Duration{Duration: time.Duration(c.CRL.Validity)},
		RenewPeriod:      &provisioner.Duration{Duration: time.Duration(c.CRL.RenewPeriod)},
		IDPurl:           c.CRLURL(),
	}
}

// serveCRL answers GET /crl and /1.0/crl like step-ca (DER, or PEM with
// ?pem) and adds what a checker polling every few seconds needs: an ETag
// and Last-Modified, and 304 to a conditional GET for the CRL it has.
func (s *Server) serveCRL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSONError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	if !s.cfg.CRL.On() {
		writeJSONError(w, http.StatusNotFound, "this CA publishes no CRL (crl.enabled is false in pki.yaml)")
		return
	}
	info, err := s.auth.GetCertificateRevocationList()
	if err != nil || info == nil || len(info.Data) == 0 {
		s.logger.Error("pki: CRL", "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "no CRL available yet")
		return
	}
	sum := sha256.Sum256(info.Data)
	etag := `"` + strconv.FormatInt(info.Number, 10) + "-" + hex.EncodeToString(sum[:8]) + `"`
	_, asPEM := r.URL.Query()["pem"]
	if asPEM {
		etag = `"` + etag[1:len(etag)-1] + `-pem"`
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache") // revalidate every time: revocations must show at once
	if !info.ExpiresAt.IsZero() {
		h.Set("Expires", info.ExpiresAt.UTC().Format(http.TimeFormat))
		if info.Duration > 0 {
			h.Set("Last-Modified", info.ExpiresAt.Add(-info.Duration).UTC().Format(http.TimeFormat))
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := info.Data
	if asPEM {
		h.Set("Content-Type", "application/x-pem-file")
		body = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: info.Data})
	} else {
		h.Set("Content-Type", "application/pkix-crl")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
