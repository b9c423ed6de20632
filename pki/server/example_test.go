package server_test

import (
	"context"
	"log"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/server"
)

// What `pki serve` does: load the CA that `pki init` wrote, and serve its
// API (step-ca's, so the step CLI works against it) until a signal.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := ca.LoadConfig("/etc/rampart/pki/pki.yaml")
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry() // serve it on cfg.Metrics for rampart_pki_*
	srv, err := server.New(ctx, cfg, slog.Default(), reg)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
