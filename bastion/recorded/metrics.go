package recorded

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	sessions *prometheus.CounterVec
	live     prometheus.Gauge
	bytes    prometheus.Counter
	failures prometheus.Counter
	pruned   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_bastion_recorded_sessions_total",
			Help: "Recorded-proxy sessions by kind (shell, exec, sftp, scp) and result (ok, refused, recording_failed).",
		}, []string{"kind", "result"}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_bastion_recorded_live_sessions",
			Help: "Sessions currently relayed by the recording proxy.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_bastion_recorded_recording_bytes_total",
			Help: "Bytes written to asciicast recordings.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_bastion_recorded_recording_failures_total",
			Help: "Recordings that failed while their session ran.",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_bastion_recorded_pruned_files_total",
			Help: "Recordings removed by the retention limits.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sessions, m.live, m.bytes, m.failures, m.pruned} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("recorded: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
