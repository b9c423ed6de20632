package server

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/authority/provisioner"
	"golang.org/x/crypto/ssh"
)

// serverMetrics implements step's authority.Meter on Prometheus.
type serverMetrics struct {
	issued   *prometheus.CounterVec
	failed   *prometheus.CounterVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_pki_certificates_issued_total",
			Help: "Certificates issued, by kind (x509, ssh), operation (sign, renew, rekey) and provisioner.",
		}, []string{"kind", "op", "provisioner"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_pki_issuance_failures_total",
			Help: "Issuance attempts the authority refused or failed, by kind and operation.",
		}, []string{"kind", "op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_pki_http_requests_total",
			Help: "API requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_pki_http_request_duration_seconds",
			Help:    "API request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.issued, m.failed, m.requests, m.duration} {
		_ = reg.Register(c)
	}
	return m
}

func provName(p provisioner.Interface) string {
	if p == nil {
		return ""
	}
	return p.GetName()
}

func (m *serverMetrics) x509(op string, p provisioner.Interface, err error) {
	if err != nil {
		m.failed.WithLabelValues("x509", op).Inc()
		return
	}
	m.issued.WithLabelValues("x509", op, provName(p)).Inc()
}

func (m *serverMetrics) ssh(op string, p provisioner.Interface, err error) {
	if err != nil {
		m.failed.WithLabelValues("ssh", op).Inc()
		return
	}
	m.issued.WithLabelValues("ssh", op, provName(p)).Inc()
}

func (m *serverMetrics) X509Signed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.x509("sign", p, err)
}
func (m *serverMetrics) X509Renewed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.x509("renew", p, err)
}
func (m *serverMetrics) X509Rekeyed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.x509("rekey", p, err)
}
func (m *serverMetrics) X509WebhookAuthorized(provisioner.Interface, error) {}
func (m *serverMetrics) X509WebhookEnriched(provisioner.Interface, error)   {}
func (m *serverMetrics) SSHSigned(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.ssh("sign", p, err)
}
func (m *serverMetrics) SSHRenewed(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.ssh("renew", p, err)
}
func (m *serverMetrics) SSHRekeyed(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.ssh("rekey", p, err)
}
func (m *serverMetrics) SSHWebhookAuthorized(provisioner.Interface, error) {}
func (m *serverMetrics) SSHWebhookEnriched(provisioner.Interface, error)   {}
func (m *serverMetrics) KMSSigned(error)                                   {}
