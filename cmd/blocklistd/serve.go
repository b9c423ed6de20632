package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

func cmdServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd serve [--config FILE] [--check]",
		"Run blocklistd: the mTLS API that agents follow and reporters report to, feeds, metrics.")
	cfgPath := fs.String("config", "/etc/rampart/blocklistd.yaml", "configuration file")
	debug := fs.Bool("debug", false, "log at debug level")
	check := fs.Bool("check", false, "load and check the configuration and its certificates, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	fc, err := server.LoadFile(*cfgPath)
	if err != nil {
		return err
	}
	tlsConfig, err := fc.ServerTLS()
	if err != nil {
		return fmt.Errorf("%s: tls: %w", *cfgPath, err)
	}
	if *check {
		fmt.Printf("%s: ok (listen %s, store %s, metrics %q)\n", *cfgPath, fc.Listen, storeName(fc), fc.MetricsListen)
		return nil
	}
	st, err := fc.OpenStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := metrics.NewRegistry()
	if _, err := fc.TLS.CRL.Start(ctx, tlsConfig, fc.TLS.Cert, fc.TLS.ClientCA, log, reg); err != nil {
		return fmt.Errorf("%s: tls: %w", *cfgPath, err)
	}
	srv, err := server.New(ctx, st, fc.ServerConfig(), log, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", *cfgPath, fc.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchConfig(ctx, *cfgPath, fc, srv, log)
	errc := make(chan error, 3)
	go func() { errc <- srv.Run(ctx) }()
	go func() { errc <- server.Serve(ctx, ln, srv.Handler(), tlsConfig, log) }()
	if fc.MetricsListen != "" {
		go func() { errc <- metrics.Serve(ctx, log, fc.MetricsListen, reg) }()
	}
	log.Info("blocklistd: serving", "listen", ln.Addr().String(), "store", storeName(fc), "version", srv.Version())
	err = <-errc
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("blocklistd: stopped")
	return nil
}

func storeName(fc *server.FileConfig) string {
	if fc.Store.Driver == "postgres" {
		return "postgres"
	}
	return "bolt:" + fc.Store.Path
}
