package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

const defaultConfig = "/etc/rampart/bastion.yaml"

// serveGCPercent is the garbage collector's target for "bastion serve"
// when GOGC is not set. x/crypto/ssh copies every incoming packet into a
// fresh buffer, 32 KiB each during a bulk jump, and the bastion's live
// heap is small: at the default of 100 the collector ran every few
// megabytes and the freed pages were handed back to the kernel and
// faulted in again. A 1 GiB jump cost the bastion 4.1 CPU seconds at 100
// and 2.2 at 400 (BenchmarkJumpThroughput); 500 idle jumps cost 127 KB
// of RSS each instead of 105 (BenchmarkIdleJumpSessions).
const serveGCPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}

func cmdServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", "serve --config FILE [--check] [-v]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml")
	verbose := fs.Bool("v", false, "debug logging")
	check := fs.Bool("check", false, "load and check the configuration and the files it names, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	tuneGC()
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	// A bastion without users only refuses: a missing users_dir or a
	// typo'd path, not something to start on.
	policy, err := bastion.NewPolicy(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	if len(policy.UserNames()) == 0 {
		return fmt.Errorf("%s: no users (neither users: nor %s has any); enrol one with \"bastion user add NAME --key FILE --config %s\"", *cfgPath, cfg.UsersDir, *cfgPath)
	}
	if *check {
		if bl := cfg.Blocklist; bl != nil {
			if _, err := cfg.ClientTLS(bl.CAFile, bl.CertFile, bl.KeyFile); err != nil {
				return fmt.Errorf("%s: blocklist: %w", *cfgPath, err)
			}
		}
		fmt.Printf("%s: ok (listen %s, %d users, %d targets, audit %s)\n", *cfgPath, cfg.Listen, len(policy.UserNames()), len(cfg.Targets), cfg.Audit.File)
		return nil
	}
	reg := metrics.NewRegistry()
	deps := bastion.Deps{Logger: logger, Registry: reg}
	if bl := cfg.Blocklist; bl != nil {
		tlsCfg, err := cfg.ClientTLS(bl.CAFile, bl.CertFile, bl.KeyFile)
		if err != nil {
			return fmt.Errorf("blocklist: %w", err)
		}
		c, err := client.New(client.Config{URL: bl.URL, TLS: tlsCfg})
		if err != nil {
			return fmt.Errorf("blocklist: %w", err)
		}
		deps.Reporter = blocklistReporter{c}
	}
	srv, closeAudit, err := bastion.Setup(ctx, cfg, deps)
	if err != nil {
		return err
	}
	defer closeAudit()
	if rc := cfg.Recording; rc.Dir != "" {
		proxy, err := bastion.NewRecorder(cfg, srv, logger, reg)
		if err != nil {
			return err
		}
		srv.SetRecorder(proxy)
	}
	if cfg.MetricsListen != "" {
		go func() {
			if err := metrics.Serve(ctx, logger, cfg.MetricsListen, reg); err != nil {
				logger.Error("bastion: metrics", "err", err)
			}
		}()
	}
	// Users, groups and targets reload on SIGHUP and whenever the config
	// file or users_dir changes ("bastion user add|disable|remove" need
	// no restart and no signal).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go srv.WatchConfig(ctx, *cfgPath, cfg, reloadPoll, hup, logger)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	logger.Info("bastion: listening", "addr", ln.Addr().String())
	return srv.Serve(ctx, ln)
}

type blocklistReporter struct{ c *client.Client }

func (r blocklistReporter) Report(ctx context.Context, addr netip.Addr, reason string, count int, window time.Duration) error {
	return r.c.Report(ctx, client.Report{Addr: addr, Reason: reason, Count: count, Window: window})
}
