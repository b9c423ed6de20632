package bastion

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	auth      *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	jumps     *prometheus.CounterVec
	jumpBytes *prometheus.CounterVec
	active    *prometheus.GaugeVec
	reports   *prometheus.CounterVec
	lockouts  *prometheus.CounterVec
	startups  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_auth_attempts_total",
			Help: "Authentication attempts by method and result.",
		}, []string{"method", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_refusals_total",
			Help: "Requests refused by policy (forwarding, X11, agent, targets), by kind.",
		}, []string{"kind"}),
		jumps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_jumps_total",
			Help: "Jump (direct-tcpip) channels by result.",
		}, []string{"result"}),
		jumpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_jump_bytes_total",
			Help: "Bytes relayed by jump channels; direction in is client to target.",
		}, []string{"direction"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_bastion_active_channels",
			Help: "Open channels by kind (jump, session).",
		}, []string{"kind"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_blocklist_reports_total",
			Help: "Brute-force sources reported to blocklistd, by result.",
		}, []string{"result"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_lockout_events_total",
			Help: "Lockouts begun (event=lock) and ended (event=unlock), by kind (source, user); locked now = lock - unlock.",
		}, []string{"kind", "event"}),
		startups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_startups_dropped_total",
			Help: "Connections dropped before authentication because too many were still logging in, by limit (max_startups, max_startups_per_source).",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.auth, m.refusals, m.jumps, m.jumpBytes, m.active, m.reports, m.lockouts, m.startups)
	}
	return m
}
