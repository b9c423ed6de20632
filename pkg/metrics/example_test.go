package metrics_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pkg/metrics"
)

func ExampleWriteTextfile() {
	reg := prometheus.NewRegistry()
	last := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rampart_acme_last_success_timestamp_seconds",
		Help: "When the last renewal run succeeded.",
	})
	reg.MustRegister(last)
	last.Set(1)
	dir, _ := os.MkdirTemp("", "textfile")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "acme.prom")
	if err := metrics.WriteTextfile(p, reg); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(p)
	fmt.Print(string(b))
	// Output:
	// # HELP rampart_acme_last_success_timestamp_seconds When the last renewal run succeeded.
	// # TYPE rampart_acme_last_success_timestamp_seconds gauge
	// rampart_acme_last_success_timestamp_seconds 1
}
