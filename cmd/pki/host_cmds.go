package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/metrics"
	"github.com/rampart-sec/rampart/pki/client"
)

func cmdBootstrap(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki bootstrap", flag.ContinueOnError)
	cli.Describe(fs, "pki bootstrap --ca-url URL --fingerprint SHA256 --token TOKEN --out DIR",
		"Join the CA: generate a key here, pin the root by fingerprint, write cert.pem, key.pem, root.pem and ca.url to DIR.")
	caURL := fs.String("ca-url", "", "CA URL, e.g. https://ca.internal:9443")
	fp := fs.String("fingerprint", "", "SHA-256 fingerprint of the CA root (pki init prints it)")
	tok := fs.String("token", "", "one-time token from pki token")
	tokFile := fs.String("token-file", "", "read the token from this file")
	out := fs.String("out", "", "directory for key.pem, cert.pem, root.pem")
	lifetime := durationFlag(fs, "lifetime", 0, "ask for this certificate lifetime, e.g. 12h or 7d (default: the CA's, 24h)")
	files := fileFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *caURL == "" || *fp == "" || *out == "" {
		return errors.New("usage: pki bootstrap --ca-url URL --fingerprint SHA256 --token TOKEN --out DIR")
	}
	t, err := readToken(*tok, *tokFile)
	if err != nil {
		return err
	}
	fo, err := files()
	if err != nil {
		return err
	}
	b, err := client.Bootstrap(ctx, *caURL, *fp, t, *out, client.BootstrapOptions{Files: fo, Lifetime: *lifetime})
	if err != nil {
		return err
	}
	l := b.Leaf()
	fmt.Printf("%s: %s serial %s, valid until %s\n", *out, l.Subject.CommonName, l.SerialNumber, l.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func cmdRenew(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki renew", flag.ContinueOnError)
	cli.Describe(fs, "pki renew --dir DIR [--daemon] [--exec CMD] [--force] [flags]\n       pki renew --ssh-host-key KEY [--dir DIR | --ca-url URL --root FILE] [--daemon] [--exec CMD] [--force]",
		"Renew the certificate in DIR over mTLS when due (or keep it renewed with --daemon), then run the reload hook.\nWith --ssh-host-key, renew that key's SSH host certificate the same way (the CA's SSHPOP provisioner).")
	dir := fs.String("dir", "", "certificate directory written by pki bootstrap")
	caURL := fs.String("ca-url", "", "CA URL (default: DIR/ca.url)")
	daemon := fs.Bool("daemon", false, "keep running and renew at ~2/3 of every lifetime")
	force := fs.Bool("force", false, "renew now even if not due (one-shot mode)")
	execCmd := fs.String("exec", "", "reload hook run through /bin/sh after a successful renewal")
	hookTimeout := fs.Duration("exec-timeout", 2*time.Minute, "reload hook timeout")
	tokFile := fs.String("token-file", "", "fresh one-time token used to join again if the certificate expired or was revoked and the CA refuses to renew it")
	textfile := fs.String("textfile", "", "write expiry metrics here (node_exporter textfile collector)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on this address (daemon)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	sshKey := fs.String("ssh-host-key", "", "renew this host key's SSH host certificate instead (SSHPOP, like step ssh renew); CA URL and root from --dir or --ca-url/--root")
	sshCert := fs.String("ssh-host-cert", "", "the SSH host certificate (default: --ssh-host-key + -cert.pub)")
	rootFile := fs.String("root", "", "CA root (default: DIR/root.pem); with --ssh-host-key")
	files := fileFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *sshKey != "" {
		return renewSSHHost(ctx, sshHostFlags{key: *sshKey, cert: *sshCert, dir: *dir, caURL: *caURL, root: *rootFile,
			daemon: *daemon, force: *force, hook: *execCmd, hookTimeout: *hookTimeout, level: *level})
	}
	if *dir == "" {
		return errors.New("usage: pki renew --dir DIR [--daemon] [--exec CMD], or pki renew --ssh-host-key KEY [--dir DIR | --ca-url URL --root FILE]")
	}
	logger, err := newLogger(os.Stderr, *level, false)
	if err != nil {
		return err
	}
	fo, err := files()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	r := &client.Renewer{Dir: *dir, CAURL: *caURL, Files: fo, Hook: *execCmd, HookTimeout: *hookTimeout,
		RecoveryTokenFile: *tokFile, Textfile: *textfile, Logger: logger, Registry: reg}
	if !*daemon {
		renewed, err := r.RenewIfDue(ctx, *force)
		if err != nil {
			return err
		}
		if !renewed {
			fmt.Println("not due yet")
		}
		return nil
	}
	if *metricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, logger, *metricsAddr, reg); err != nil {
				logger.Error("pki: metrics", "err", err)
			}
		}()
	}
	return r.Run(ctx)
}
