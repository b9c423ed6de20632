package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

type agentMetrics struct {
	applyDuration *prometheus.HistogramVec
	syncErrors    prometheus.Counter
	entries       *prometheus.GaugeVec
	version       prometheus.Gauge
	reachable     prometheus.Gauge
	lastSync      prometheus.Gauge
	// hostAddrChanges counts rebuilds of the whole set because the host's
	// addresses changed.
	hostAddrChanges prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, lag, refused func() float64) (*agentMetrics, error) {
	m := &agentMetrics{
		applyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_blocklist_agent_apply_duration_seconds",
			Help:    "Time to push a change into the firewall, by operation (replace: full set, apply: delta).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_blocklist_agent_sync_errors_total",
			Help: "Failed attempts to sync with blocklistd.",
		}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_entries",
			Help: "Entries in the blocklistd set this agent enforces, by address family.",
		}, []string{"family"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_version",
			Help: "blocklistd version this agent enforces.",
		}),
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_server_reachable",
			Help: "1 when the last attempt to reach blocklistd worked.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_last_sync_timestamp_seconds",
			Help: "Unix time blocklistd last answered this agent.",
		}),
		hostAddrChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_blocklist_agent_host_address_changes_total",
			Help: "Times the whole set was rebuilt because this host's addresses changed.",
		}),
	}
	cs := []prometheus.Collector{m.applyDuration, m.syncErrors, m.entries, m.version, m.reachable, m.lastSync, m.hostAddrChanges,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_refused_entries",
			Help: "Entries of blocklistd's set this agent's policy refuses (broader than it accepts, or invalid): not enforced, nor the narrower bans blocklistd folded into them.",
		}, refused),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rampart_blocklist_agent_sync_lag_seconds",
			Help: "Seconds since blocklistd last answered (since start when it never did).",
		}, lag),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
