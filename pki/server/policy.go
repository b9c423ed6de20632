package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/smallstep/certificates/policy"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// namePolicy decides which names a certificate request may carry. DNS names
// and IPs go through step's policy engine; URI SANs must be Rampart roles
// from the configured list (step's engine cannot match URNs, which have no
// host, so roles are checked here). A nil engine allows every DNS name and IP.
type namePolicy struct {
	engine *policy.NamePolicyEngine
	roles  []string
}

func newNamePolicy(c *ca.Config) (*namePolicy, error) {
	p := &namePolicy{roles: c.Roles}
	if len(c.Policy.DNS) == 0 && len(c.Policy.IP) == 0 {
		return p, nil
	}
	var opts []policy.NamePolicyOption
	if len(c.Policy.DNS) > 0 {
		opts = append(opts, policy.WithPermittedDNSDomains(c.Policy.DNS...))
	}
	if len(c.Policy.IP) > 0 {
		opts = append(opts, policy.WithPermittedIPsOrCIDRs(c.Policy.IP...))
	}
	e, err := policy.New(opts...)
	if err != nil {
		return nil, err
	}
	p.engine = e
	return p, nil
}

// errPolicy marks a request the name policy refuses.
var errPolicy = errors.New("name policy")

// check validates the SANs of a certificate request.
func (p *namePolicy) check(csr *x509.CertificateRequest) error {
	return p.checkNames(csr.DNSNames, csr.IPAddresses, csr.URIs, csr.EmailAddresses)
}

// checkCert validates the SANs of a certificate presented for renewal:
// step-ca copies them into the new certificate without consulting any name
// policy, so a policy narrowed since the certificate was issued would
// otherwise never apply to it.
func (p *namePolicy) checkCert(c *x509.Certificate) error {
	return p.checkNames(c.DNSNames, c.IPAddresses, c.URIs, c.EmailAddresses)
}

func (p *namePolicy) checkNames(dnsNames []string, ips []net.IP, uris []*url.URL, emails []string) error {
	if len(emails) > 0 {
		return fmt.Errorf("%w: e-mail addresses %v are not issued by this CA", errPolicy, emails)
	}
	for _, u := range uris {
		s := u.String()
		role, ok := strings.CutPrefix(s, client.RolePrefix)
		if !ok {
			return fmt.Errorf("%w: URI %q is not a Rampart role (%s<role>)", errPolicy, s, client.RolePrefix)
		}
		if !slices.Contains(p.roles, role) {
			return fmt.Errorf("%w: role %q is not one of %v", errPolicy, role, p.roles)
		}
	}
	if p.engine == nil {
		return nil
	}
	for _, d := range dnsNames {
		if err := p.engine.IsDNSAllowed(d); err != nil {
			return fmt.Errorf("%w: DNS name %q is not allowed", errPolicy, d)
		}
	}
	for _, ip := range ips {
		if err := p.engine.IsIPAllowed(ip); err != nil {
			return fmt.Errorf("%w: IP address %s is not allowed", errPolicy, ip)
		}
	}
	return nil
}

// checkSSH validates SSH principals: host certificates name hosts (DNS or
// IP, under the same policy); user principals are not restricted here.
func (p *namePolicy) checkSSHHost(principals []string) error {
	if p.engine == nil {
		return nil
	}
	for _, pr := range principals {
		var err error
		if ip := net.ParseIP(pr); ip != nil {
			err = p.engine.IsIPAllowed(ip)
		} else {
			err = p.engine.IsDNSAllowed(pr)
		}
		if err != nil {
			return fmt.Errorf("%w: SSH host principal %q is not allowed", errPolicy, pr)
		}
	}
	return nil
}
