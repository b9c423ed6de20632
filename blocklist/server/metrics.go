package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics is blocklistd's Prometheus collector. Gauges that describe
// the state (decisions by source, published entries, version, connected
// agents) are computed at scrape time.
type serverMetrics struct {
	s *Server

	decisions, published, version, connected, waiting *prometheus.Desc

	reportsAccepted *prometheus.CounterVec
	reportsRejected *prometheus.CounterVec
	feedFailures    *prometheus.CounterVec
	tlsRefused      *prometheus.CounterVec
	feedRejected    *prometheus.CounterVec
	syncs           *prometheus.CounterVec
	agentLag        *prometheus.GaugeVec
	agentLastSync   *prometheus.GaugeVec
}

func newServerMetrics(s *Server) *serverMetrics {
	return &serverMetrics{
		s:         s,
		decisions: prometheus.NewDesc("rampart_blocklistd_decisions", "Active decisions by source (manual, report, feed:<name>).", []string{"source"}, nil),
		published: prometheus.NewDesc("rampart_blocklistd_published_prefixes", "Prefixes in the published blocklist (after allowlist and overlap removal).", nil, nil),
		version:   prometheus.NewDesc("rampart_blocklistd_version", "Current blocklist version.", nil, nil),
		connected: prometheus.NewDesc("rampart_blocklistd_connected_agents", "Agents (by certificate name) with a sync request in flight.", nil, nil),
		waiting:   prometheus.NewDesc("rampart_blocklistd_sync_requests_in_flight", "Sync requests in flight (long polls waiting or being answered).", nil, nil),
		reportsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_reports_accepted_total",
			Help: "Reports accepted, by outcome (counted, banned, already banned, allowlisted: ignored)."}, []string{"outcome"}),
		reportsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_reports_rejected_total",
			Help: "Reports refused, by reason (invalid, too_large, rate_limited)."}, []string{"reason"}),
		feedFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_feed_failures_total",
			Help: "Feed fetches that failed or were refused, keeping the feed's previous entries, by reason (fetch, not_a_list, empty, shrink, store)."}, []string{"feed", "reason"}),
		feedRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_feed_rejected_lines_total",
			Help: "Feed lines rejected by the parser (bad syntax, too broad)."}, []string{"feed"}),
		tlsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason (no_certificate, unknown_ca, expired, revoked, bad_certificate, other)."}, []string{"reason"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocklistd_syncs_total",
			Help: "Sync answers sent, by kind (full, delta)."}, []string{"kind"}),
		agentLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_blocklistd_agent_sync_lag_versions",
			Help: "Versions between the current one and the one each agent held at its last request."}, []string{"agent"}),
		agentLastSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_blocklistd_agent_last_sync_timestamp_seconds",
			Help: "When each agent last asked for the blocklist."}, []string{"agent"}),
	}
}

func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.decisions
	ch <- m.published
	ch <- m.version
	ch <- m.connected
	ch <- m.waiting
	m.reportsAccepted.Describe(ch)
	m.reportsRejected.Describe(ch)
	m.feedFailures.Describe(ch)
	m.feedRejected.Describe(ch)
	m.tlsRefused.Describe(ch)
	m.syncs.Describe(ch)
	m.agentLag.Describe(ch)
	m.agentLastSync.Describe(ch)
}

func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	e := m.s.eng
	e.mu.RLock()
	for src, n := range e.bySource {
		if n > 0 {
			ch <- prometheus.MustNewConstMetric(m.decisions, prometheus.GaugeValue, float64(n), src)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.published, prometheus.GaugeValue, float64(e.published.len()))
	ch <- prometheus.MustNewConstMetric(m.version, prometheus.GaugeValue, float64(e.version))
	e.mu.RUnlock()
	m.s.agentsMu.Lock()
	ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, float64(len(m.s.inflight)))
	ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(m.s.requests))
	m.s.agentsMu.Unlock()
	m.reportsAccepted.Collect(ch)
	m.reportsRejected.Collect(ch)
	m.feedFailures.Collect(ch)
	m.feedRejected.Collect(ch)
	m.tlsRefused.Collect(ch)
	m.syncs.Collect(ch)
	m.agentLag.Collect(ch)
	m.agentLastSync.Collect(ch)
}
