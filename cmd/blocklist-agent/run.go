package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/rampart-sec/rampart/blocklist/agent"
)

// defaultConfig is where run and status look without --config.
const defaultConfig = "/etc/rampart/blocklist-agent.yaml"

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", defaultConfig, "configuration `FILE` (see examples/blocklist/agent.yaml)")
	check := fs.Bool("check", false, "check the configuration and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: blocklist-agent run [--config FILE] [--check]

Follow blocklistd over mTLS and enforce its blocklist in this host's
firewall: the last good snapshot at start (even when blocklistd is
unreachable), then deltas as they happen. Local detectors tail logs and
report offenders. Losing blocklistd never empties the firewall; only
"blocklist-agent flush" does.

flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return err
	}
	if *check {
		if _, err := cfg.Server.TLSConfig(); err != nil {
			return fmt.Errorf("config: %s: %w", *path, err)
		}
		fmt.Printf("%s: ok (server %s, backend %s, %d detectors, state in %s)\n",
			*path, cfg.Server.URL, cfg.Firewall.Backend, len(cfg.Detectors), cfg.StateDir)
		return nil
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); cfg.LogLevel != "" && err != nil {
		return fmt.Errorf("config: %s: log_level: %w", *path, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	d := &agent.Daemon{Config: cfg, Logger: logger}
	if err := d.Run(ctx); err != nil {
		return err
	}
	logger.Info("blocklist agent stopped; the firewall keeps the last enforced set")
	return nil
}
