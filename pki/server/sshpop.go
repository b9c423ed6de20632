package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	stepconfig "github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/rampart-sec/rampart/pki/ca"
)

// applySSHPOP adds step-ca's SSHPOP provisioner: a host proves it holds
// the key of its current SSH host certificate and gets a new one with the
// same principals and lifetime (POST /1.0/ssh/renew).
func applySSHPOP(c *ca.Config, sc *stepconfig.Config) {
	if !c.SSHPOP.On(c.SSH.Enabled) {
		return
	}
	yes := true
	d := func(v time.Duration) *provisioner.Duration { return &provisioner.Duration{Duration: v} }
	sc.AuthorityConfig.Provisioners = append(sc.AuthorityConfig.Provisioners, &provisioner.SSHPOP{
		Type: "SSHPOP",
		Name: c.SSHPOP.Name,
		Claims: &provisioner.Claims{
			EnableSSHCA:       &yes,
			MinHostSSHDur:     d(5 * time.Minute),
			DefaultHostSSHDur: d(time.Duration(c.SSH.HostDefault)),
			MaxHostSSHDur:     d(time.Duration(c.SSH.HostMax)),
		},
	})
}

// precheckSSHRenew holds an SSH host renewal to the name policy: step-ca
// copies the old principals without consulting any policy, so a policy
// narrowed since the certificate was signed would otherwise never apply.
// It reads (and restores) the body; an unparsable request is left to
// step-ca to refuse.
func (s *Server) precheckSSHRenew(r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		OTT string `json:"ott"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	cert, _, err := provisioner.ExtractSSHPOPCert(req.OTT)
	if err != nil {
		return nil
	}
	if err := s.policy.checkSSHHost(cert.ValidPrincipals); err != nil {
		return fmt.Errorf("renewal of SSH host certificate %q (serial %d): %w", cert.KeyId, cert.Serial, err)
	}
	return nil
}
