package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rampart-sec/rampart/acme"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
)

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
