// Command pki is Rampart's internal CA and its host-side client.
//
//	pki init --dir DIR                         create root, intermediate, SSH CA and provisioner keys
//	pki serve --config pki.yaml                run the CA (step-ca HTTP API)
//	pki token NAME [--san S]... [--role R]... [--ttl D]
//	pki bootstrap --ca-url URL --fingerprint SHA256 --token TOKEN --out DIR
//	pki renew --dir DIR [--daemon] [--exec CMD]
//	pki revoke SERIAL
//	pki list [--expiring D] [--revoked] [--name GLOB] [--json]
//	pki ssh-sign (--user PRINCIPAL | --host NAME...) --key PUBKEY [--ttl D]
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/rampart-sec/rampart/internal/cli"
)

const usage = `usage: pki <command> [flags]

CA host:
  init       create a CA: root + intermediate (ECDSA P-256), SSH CA keys, provisioner key
  serve      run the CA (step-ca's HTTP API; the step CLI works against it)
  token      mint a single-use token for a host: pki token NAME [--san S]... [--role R]...
  revoke     revoke a certificate (refused by CRL checkers within a minute): pki revoke SERIAL
  list       what the CA issued: pki list [--expiring D] [--revoked] [--name GLOB] [--all] [--json]
  acme-eab   mint an ACME external account binding key (acme.require_eab): pki acme-eab NAME
  ssh-sign   sign an SSH user or host key
  fingerprint print the root fingerprint hosts pin

Every host:
  bootstrap  join with a one-time token: key generated here, root pinned by fingerprint
  renew      renew over mTLS (one shot, or --daemon), then run the reload hook

Run "pki <command> --help" for a command's flags. The CA commands read
--config (default $PKI_CONFIG or /etc/rampart/pki/pki.yaml).
`

func main() {
	os.Exit(cli.Main("pki", usage, map[string]cli.Command{
		"init":        cmdInit,
		"serve":       cmdServe,
		"token":       cmdToken,
		"bootstrap":   cmdBootstrap,
		"renew":       cmdRenew,
		"revoke":      cmdRevoke,
		"list":        cmdList,
		"acme-eab":    cmdACMEEAB,
		"ssh-sign":    cmdSSHSign,
		"fingerprint": cmdFingerprint,
	}, os.Args[1:], os.Stderr))
}

// parse parses flags wherever they appear, returning the positional
// arguments (so "pki token web1 --san a" works).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func newLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func defaultConfig() string {
	if p := os.Getenv("PKI_CONFIG"); p != "" {
		return p
	}
	return "/etc/rampart/pki/pki.yaml"
}
