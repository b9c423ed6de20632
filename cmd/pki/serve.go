//go:build !pkiclient

package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/metrics"
	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/server"
)

func cmdServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki serve", flag.ContinueOnError)
	cli.Describe(fs, "pki serve [--config FILE] [--check]",
		"Run the CA: step-ca's HTTPS API (the step CLI works against it), ACME, and metrics.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	jsonLog := fs.Bool("log-json", false, "log JSON lines")
	check := fs.Bool("check", false, "load the configuration, the root certificate and the provisioner key (with the password file), then exit")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, *level, *jsonLog)
	if err != nil {
		return err
	}
	cfg, err := ca.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *check {
		fp, err := cfg.RootFingerprint()
		if err != nil {
			return fmt.Errorf("%s: %w", *cfgPath, err)
		}
		if _, err := cfg.LoadProvisioner(fp); err != nil {
			return fmt.Errorf("%s: %w", *cfgPath, err)
		}
		fmt.Printf("%s: ok (listen %s, root %s, metrics %q)\n", *cfgPath, cfg.Listen, fp, cfg.Metrics)
		return nil
	}
	reg := metrics.NewRegistry()
	srv, err := server.New(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.Metrics != "" {
		go func() {
			if err := metrics.Serve(ctx, logger, cfg.Metrics, reg); err != nil {
				logger.Error("pki: metrics", "err", err)
			}
		}()
	}
	return srv.Serve(ctx, ln)
}
