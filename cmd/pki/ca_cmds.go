package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

func cmdInit(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("pki init", flag.ContinueOnError)
	cli.Describe(fs, "pki init --dir DIR [--name NAME] [--dns NAME]... [--listen ADDR] [flags]",
		"Create a CA in DIR: root and intermediate certificates, SSH CA keys, the provisioner key and pki.yaml.")
	dir := fs.String("dir", "/etc/rampart/pki", "directory for the CA's keys, certificates and pki.yaml")
	name := fs.String("name", "Rampart", "CA name (\"Rampart\" gives \"Rampart Root CA\")")
	listen := fs.String("listen", "127.0.0.1:9443", "address pki serve listens on")
	pw := fs.String("password-file", "", "password that encrypts every key (default DIR/password.txt, generated if missing)")
	dsn := fs.String("store-dsn", "", "PostgreSQL DSN (default: bbolt file in DIR)")
	noSSH := fs.Bool("no-ssh", false, "do not create SSH CA keys")
	metricsAddr := fs.String("metrics", "", "Prometheus listen address for pki serve (e.g. 127.0.0.1:9472)")
	audit := fs.String("audit-log", "audit.log", "issuance audit log, relative to DIR (\"-\" = the daemon's log)")
	var dns listFlag
	fs.Var(&dns, "dns", "name or IP in the CA's TLS certificate and token audience (repeatable; default localhost + listen host)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	res, err := ca.Init(*dir, ca.InitOptions{Name: *name, Listen: *listen, DNSNames: dns, PasswordFile: *pw, StoreDSN: *dsn, NoSSH: *noSSH, Metrics: *metricsAddr, AuditLog: *audit})
	if err != nil {
		return err
	}
	fmt.Printf("CA created; config %s\nroot fingerprint: %s\n", res.ConfigPath, res.Fingerprint)
	return nil
}

// loadCA loads pki.yaml and its provisioner key.
func loadCA(path string) (*ca.Config, *client.Provisioner, error) {
	cfg, err := ca.LoadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	prov, err := cfg.OpenProvisioner()
	if err != nil {
		return nil, nil, err
	}
	return cfg, prov, nil
}

func cmdToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("pki token", flag.ContinueOnError)
	cli.Describe(fs, "pki token NAME [--san S]... [--role R]... [--ttl D] [--config FILE]",
		"Mint a single-use token with which the host NAME joins the CA (pki bootstrap).")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	ttl := durationFlag(fs, "ttl", time.Hour, "how long the token can be used (90s, 30m, 2h, 1d)")
	caURL := fs.String("ca-url", "", "CA URL the host will use (default: url in pki.yaml)")
	var sans, roles listFlag
	fs.Var(&sans, "san", "DNS name or IP for the certificate (repeatable; default NAME)")
	fs.Var(&roles, "role", "Rampart role: agent, reporter, admin (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pki token NAME [--san S]... [--role R]... [--ttl D]")
	}
	if *ttl <= 0 {
		return fmt.Errorf("--ttl %s: must be positive", *ttl)
	}
	cfg, prov, err := loadCA(*cfgPath)
	if err != nil {
		return err
	}
	u := cfg.URL
	if *caURL != "" {
		u = *caURL
	}
	tok, err := prov.Token(u, client.TokenRequest{Subject: pos[0], SANs: sans, Roles: roles, TTL: *ttl, AllowedRoles: cfg.Roles})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func cmdFingerprint(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("pki fingerprint", flag.ContinueOnError)
	cli.Describe(fs, "pki fingerprint [--config FILE]",
		"Print the SHA-256 fingerprint of the root certificate, which hosts pin at bootstrap.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := ca.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	fp, err := cfg.RootFingerprint()
	if err != nil {
		return err
	}
	fmt.Println(fp)
	return nil
}

func cmdRevoke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki revoke", flag.ContinueOnError)
	cli.Describe(fs, "pki revoke SERIAL [--config FILE] [flags]",
		"Revoke the certificate with this serial number.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	reason := fs.String("reason", "", "why (kept in the CA's store)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pki revoke SERIAL (decimal, or hex with 0x)")
	}
	serial, err := ca.ParseSerial(pos[0])
	if err != nil {
		return err
	}
	cfg, prov, err := loadCA(*cfgPath)
	if err != nil {
		return err
	}
	c, err := cfg.Client()
	if err != nil {
		return err
	}
	tok, err := prov.RevokeToken(cfg.URL, serial)
	if err != nil {
		return err
	}
	if err := c.Revoke(ctx, serial, tok, *reason); err != nil {
		return fmt.Errorf("revoke %s: %w", pos[0], err)
	}
	if cfg.CRL.On() {
		fmt.Printf("revoked %s: it can no longer be renewed, and the CA's CRL (%s) lists it now\n", pos[0], cfg.CRLURL())
	} else {
		fmt.Printf("revoked %s: it can no longer be renewed (crl.enabled is false: peers accept it until it expires)\n", pos[0])
	}
	return nil
}
