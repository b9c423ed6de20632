package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/rampart-sec/rampart/internal/cli"
)

func cmdACMEEAB(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki acme-eab", flag.ContinueOnError)
	cli.Describe(fs, "pki acme-eab NAME [--json] [--config FILE]",
		"Mint an ACME external account binding (key id and HMAC key) for the ACME client NAME.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	jsonOut := fs.Bool("json", false, "print {kid, hmac_key, reference} as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pki acme-eab NAME (a unique name for the ACME client the key is for)")
	}
	cfg, prov, err := loadCA(*cfgPath)
	if err != nil {
		return err
	}
	if !cfg.ACME.Enabled {
		return fmt.Errorf("%s: acme.enabled is false: the CA serves no ACME", *cfgPath)
	}
	c, err := cfg.Client()
	if err != nil {
		return err
	}
	tok, err := prov.ACMEEABToken(cfg.URL)
	if err != nil {
		return err
	}
	k, err := c.NewACMEEAB(ctx, tok, pos[0])
	if err != nil {
		return fmt.Errorf("acme-eab %s: %w", pos[0], err)
	}
	if *jsonOut {
		return json.NewEncoder(os.Stdout).Encode(k)
	}
	fmt.Printf("directory: %s\nkid: %s\nhmac_key: %s\n# certbot: --server %[1]s --eab-kid %[2]s --eab-hmac-key %[3]s\n# the key binds to the first ACME account that uses it\n",
		cfg.ACMEDirectoryURL(), k.KID, k.HMACKey)
	return nil
}
