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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rampart-sec/rampart/internal/cli"
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

// parseStatus is the exit status for a flag error: 0 for --help.
func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
