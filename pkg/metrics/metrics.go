// Package metrics serves a Prometheus registry over HTTP for the daemons and
// writes it as a node_exporter textfile for the timers (acme-renew, pki renew)
// that do not live long enough to be scraped.
//
// Every daemon builds its own *prometheus.Registry and hands it around; there
// is no package-level default registry, so tests and embedders stay isolated.
// Metric names follow rampart_<piece>_<what>_<unit>.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// NewRegistry returns a registry with the Go runtime and process collectors,
// which every daemon wants (RSS and goroutines are how leaks show up).
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler returns the /metrics handler for g.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Serve listens on addr and serves /metrics until ctx is done. An empty addr
// disables the endpoint and returns nil at once.
func Serve(ctx context.Context, logger *slog.Logger, addr string, g prometheus.Gatherer) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return ServeListener(ctx, logger, ln, g)
}

// ServeListener is Serve on an existing listener.
func ServeListener(ctx context.Context, logger *slog.Logger, ln net.Listener, g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// WriteTextfile writes everything g gathers to path in the Prometheus text
// format, atomically and world-readable, for node_exporter's textfile
// collector.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("metrics: gather: %w", err)
	}
	return atomicfile.Write(path, atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}, func(w io.Writer) error {
		enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				return err
			}
		}
		return nil
	})
}
