// Command acme-renew keeps public TLS certificates renewed from Let's
// Encrypt or any ACME CA. A systemd timer or cron runs it hourly.
//
//	acme-renew run   --config acme.yaml [--force NAME]...   renew what is due; exit 1 failed, 4 backing off, 75 locked
//	acme-renew check --config acme.yaml [--warning 14d] [--critical 7d]   exit 0 ok / 1 warning / 2 critical
//	acme-renew list  --config acme.yaml                      every certificate and when it is next due
//
// This is the only Rampart binary that links lego's DNS providers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/providers/dns"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
)

const usage = `usage: acme-renew <command> --config FILE [flags]

commands:
  run     renew the certificates that are due (what the timer runs); exit 1 if any
          failed or the config is broken, 4 if one is backing off after failures,
          75 if another run holds the lock
  check   report days left, issuer and names of the certificates on disk;
          exit 0 ok, 1 warning, 2 critical (Nagios)
  list    show every certificate and when it is next due (no network)

Run "acme-renew <command> --help" for a command's flags.
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main is the whole program, returning the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) < 1 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, cli.Version("acme-renew"))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "list":
		return cmdList(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "acme-renew: unknown command %q\n\n%s", args[0], usage)
	return 2
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("acme-renew "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/rampart/acme.yaml", "configuration `file`")
	return fs, path
}

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
		if !hasCert(cfg, n) {
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

// parseStatus is the exit status for a flag error: 0 for --help.
func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func hasCert(cfg *acme.Config, name string) bool {
	for _, c := range cfg.Certificates {
		if c.Name == name {
			return true
		}
	}
	return false
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := flags("check", stderr)
	cli.Describe(fs, "acme-renew check [--config FILE] [--warning D] [--critical D]",
		"Report the days left, issuer and names of the certificates on disk: exit 0 ok, 1 warning, 2 critical, 3 unknown (Nagios).")
	warn := fs.String("warning", "14d", "warn when less than this remains (capped at a quarter of the lifetime)")
	crit := fs.String("critical", "7d", "critical when less than this remains (capped at an eighth of the lifetime)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 3 // Nagios UNKNOWN
	}
	w, err1 := config.ParseDuration(*warn)
	c, err2 := config.ParseDuration(*crit)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "acme-renew check: %v\n", err)
		return 3
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stdout, "ACME UNKNOWN - %v\n", err)
		return 3
	}
	return acme.Check(stdout, cfg, acme.CheckThresholds{Warning: w, Critical: c}, time.Now())
}

func cmdList(args []string, stdout, stderr io.Writer) int {
	fs, path := flags("list", stderr)
	cli.Describe(fs, "acme-renew list [--config FILE]", "Show every certificate and when it is next due (no network).")
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "acme-renew list: %v\n", err)
		return 1
	}
	if err := acme.List(stdout, cfg, time.Now()); err != nil {
		fmt.Fprintf(stderr, "acme-renew list: %v\n", err)
		return 1
	}
	return 0
}
