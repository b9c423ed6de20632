package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/audit"
)

func cmdAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintf(os.Stderr, "usage: bastion audit verify [--file F | --config FILE]\n\n%s\n", verbSummaries["audit verify"])
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: bastion audit verify [--file F | --config FILE]")
	}
	fs := newFlags("audit verify", "audit verify [--file F | --config FILE]")
	file := fs.String("file", "", "audit log (default: audit.file from the config)")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, to find the audit log")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		cfg, err := bastion.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		*file = cfg.Path(cfg.Audit.File)
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		return fmt.Errorf("%s: %w (%d records before it are intact)", *file, err, n)
	}
	fmt.Printf("%s: %d records, chain intact\n", *file, n)
	return nil
}

func cmdSSHFP(ctx context.Context, args []string) error {
	fs := newFlags("sshfp", "sshfp [--config FILE] [--host NAME]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, to find the host keys")
	host := fs.String("host", "", "DNS name of the bastion (default: the hostname)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *host == "" {
		*host, _ = os.Hostname()
	}
	// Read only: LoadHostKeys would generate missing keys.
	keys, err := bastion.ReadHostKeys(cfg.Path(cfg.HostKeyDir))
	if err != nil {
		return err
	}
	out, err := bastion.SSHFP(*host, keys)
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}
