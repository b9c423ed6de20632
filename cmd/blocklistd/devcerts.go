package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/internal/cli"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// cmdDevCerts writes a throwaway CA for demos and tests; production
// certificates come from `pki token NAME --role ...`.
func cmdDevCerts(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev-certs", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd dev-certs --out DIR [--host NAME]... [--validity D]",
		"Write a throwaway CA and certificates for development; production certificates come from pki token.")
	out := fs.String("out", "", "directory to write ca.pem, blocklistd.pem, agent.pem, reporter.pem, admin.pem (+ -key.pem)")
	validity := fs.Duration("validity", 30*24*time.Hour, "certificate lifetime")
	var hosts listFlag
	fs.Var(&hosts, "host", "name or address the server certificate is valid for (repeatable; default localhost, 127.0.0.1, ::1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return errors.New("usage: blocklistd dev-certs --out DIR [--host H]")
	}
	if len(hosts) == 0 {
		hosts = listFlag{"localhost", "127.0.0.1", "::1"}
	}
	if err := server.WriteDevCerts(*out, hosts, *validity); err != nil {
		return err
	}
	fmt.Printf("wrote a development CA and certificates to %s (not for production: use pki)\n", *out)
	return nil
}
