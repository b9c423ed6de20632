package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/pki/client"
)

type sshHostFlags struct {
	key, cert, dir, caURL, root string
	daemon, force               bool
	hook                        string
	hookTimeout                 time.Duration
	level                       string
}

// renewSSHHost is pki renew --ssh-host-key: the CA URL and root come from
// a bootstrapped directory (ca.url, root.pem) or --ca-url and --root.
func renewSSHHost(ctx context.Context, f sshHostFlags) error {
	logger, err := newLogger(os.Stderr, f.level, false)
	if err != nil {
		return err
	}
	caURL, root := f.caURL, f.root
	if f.dir != "" {
		if caURL == "" {
			b, err := os.ReadFile(filepath.Join(f.dir, client.CAURLFile))
			if err != nil {
				return err
			}
			caURL = strings.TrimSpace(string(b))
		}
		if root == "" {
			root = filepath.Join(f.dir, client.RootFile)
		}
	}
	if caURL == "" || root == "" {
		return errors.New("pki renew --ssh-host-key: give --dir (a pki bootstrap directory) or --ca-url and --root")
	}
	b, err := os.ReadFile(root)
	if err != nil {
		return err
	}
	c, err := client.New(caURL, client.CertPool(b))
	if err != nil {
		return err
	}
	r := &client.SSHHostRenewer{KeyFile: f.key, CertFile: f.cert, Client: c, Hook: f.hook, HookTimeout: f.hookTimeout, Logger: logger}
	if f.daemon {
		return r.Run(ctx)
	}
	renewed, err := r.RenewIfDue(ctx, f.force)
	if err != nil {
		return err
	}
	if !renewed {
		fmt.Println("not due yet")
	}
	return nil
}
