package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

func cmdSSHSign(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki ssh-sign", flag.ContinueOnError)
	cli.Describe(fs, "pki ssh-sign (--user PRINCIPAL | --host NAME...) --key PUBKEY [--ttl D] [--config FILE]",
		"Sign an SSH user or host public key with the CA's SSH keys.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	user := fs.String("user", "", "sign a user certificate for this principal")
	var hosts listFlag
	fs.Var(&hosts, "host", "sign a host certificate for this name (repeatable)")
	keyPath := fs.String("key", "", "public key file (id_ed25519.pub, ssh_host_ed25519_key.pub)")
	ttl := fs.Duration("ttl", 0, "certificate lifetime (default: the CA's, 16h user / 30d host)")
	out := fs.String("out", "", "write the certificate here (default: KEY with .pub replaced by -cert.pub)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if (*user == "") == (len(hosts) == 0) || *keyPath == "" {
		return errors.New("usage: pki ssh-sign (--user PRINCIPAL | --host NAME...) --key PUBKEY [--ttl D]")
	}
	raw, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	cfg, prov, err := loadCA(*cfgPath)
	if err != nil {
		return err
	}
	c, err := cfg.Client()
	if err != nil {
		return err
	}
	var cert *ssh.Certificate
	if *user != "" {
		cert, err = c.SignSSHUser(ctx, prov, pub, *user, *ttl)
	} else {
		cert, err = c.SignSSHHost(ctx, prov, pub, hosts, *ttl)
	}
	if err != nil {
		return err
	}
	dst := *out
	if dst == "" {
		dst = strings.TrimSuffix(*keyPath, ".pub") + "-cert.pub"
	}
	if err := atomicfile.WriteFile(dst, ssh.MarshalAuthorizedKey(cert), atomicfile.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		return err
	}
	fmt.Printf("%s: serial %d, principals %v, valid until %s\n", dst, cert.Serial, cert.ValidPrincipals, time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	return nil
}
