package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"

	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/providers/dns"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/internal/cli"
)

// Exit statuses of acme-renew run (documented in acme/README.md).
const (
	exitFailed     = 1  // a certificate failed in this run, or the config is broken
	exitBackingOff = 4  // nothing failed now, but a certificate is backing off after failures
	exitLocked     = 75 // EX_TEMPFAIL: another run holds the lock and does the work
)

// loadConfig loads the config and builds its DNS providers, so that an
// unknown provider or a missing variable is a config error in every verb.
func loadConfig(path string) (*acme.Config, error) {
	cfg, err := acme.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckDNSProviders(dns.NewDNSChallengeProviderByName); err != nil {
		return nil, err
	}
	return cfg, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := flags("run", stderr)
	cli.Describe(fs, "acme-renew run [--config FILE] [--force NAME]... [-v] [--check]",
		"Renew the certificates that are due (what the timer runs).")
	var force stringList
	fs.Var(&force, "force", "renew certificate `NAME` even if not due (repeatable)")
	verbose := fs.Bool("v", false, "log progress (lego's too) to stderr")
	check := fs.Bool("check", false, "load and check the configuration, then exit (no network)")
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "acme-renew run: %v\n", err)
		return exitFailed
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (%d certificates, %d accounts, state in %s)\n", *path, len(cfg.Certificates), len(cfg.Accounts), cfg.StateDir)
		return 0
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *verbose {
		defer acme.SetLegoLogger(logger)()
	} else {
		legolog.Logger = log.New(io.Discard, "", 0)
	}
	for _, n := range force {
		if !cfg.HasCertificate(n) {
			fmt.Fprintf(stderr, "acme-renew run: --force %s: no such certificate in %s\n", n, *path)
			return 2
		}
	}
	r, err := acme.NewRenewer(cfg, acme.Options{
		Logger:      logger,
		DNSProvider: dns.NewDNSChallengeProviderByName,
		Force:       force,
		Step:        crashStep(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "acme-renew run: %v\n", err)
		return 1
	}
	sum, err := r.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "acme-renew run: %v\n", err)
		if errors.Is(err, acme.ErrLocked) {
			return exitLocked
		}
		return exitFailed
	}
	sum.Write(stdout)
	switch {
	case sum.Failed() > 0:
		return exitFailed
	case sum.BackingOff() > 0:
		// Nothing was tried, but the certificate is still in trouble: an
		// OnFailure= alert keeps firing until it renews.
		return exitBackingOff
	}
	return 0
}
