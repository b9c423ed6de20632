package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pki/client"
)

func cmdList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pki list", flag.ContinueOnError)
	cli.Describe(fs, "pki list [--expiring D] [--revoked] [--name GLOB] [--all] [--json] [--config FILE]",
		"List the certificates the CA issued.")
	cfgPath := fs.String("config", defaultConfig(), "pki.yaml")
	var expiring dayDuration
	fs.Var(&expiring, "expiring", "only valid certificates that expire within D (e.g. 2h, 7d)")
	revoked := fs.Bool("revoked", false, "only revoked certificates")
	name := fs.String("name", "", "only certificates whose subject or a name matches GLOB (*.internal, web?)")
	all := fs.Bool("all", false, "include expired certificates")
	jsonOut := fs.Bool("json", false, "print a JSON array")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("usage: pki list [--expiring D] [--revoked] [--name GLOB] [--all] [--json]")
	}
	f := client.InventoryFilter{All: *all, Revoked: *revoked, Expiring: time.Duration(expiring), Name: *name}
	if err := f.Validate(); err != nil {
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
	tok, err := prov.InventoryToken(cfg.URL)
	if err != nil {
		return err
	}
	certs, err := c.Inventory(ctx, tok)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	now := time.Now()
	sel := []client.Issued{}
	for _, is := range certs {
		if f.Match(is, now) {
			sel = append(sel, is)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sel)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tSUBJECT\tNAMES\tROLES\tNOT AFTER\tSTATE")
	for _, is := range sel {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", is.Serial, is.Subject, dash(strings.Join(is.Names, ",")),
			dash(strings.Join(is.Roles, ",")), is.NotAfter.Format(time.RFC3339), is.State(now))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dayDuration is a flag taking days too ("7d").
type dayDuration time.Duration

func (d *dayDuration) String() string { return time.Duration(*d).String() }
func (d *dayDuration) Set(v string) error {
	x, err := config.ParseDuration(v)
	*d = dayDuration(x)
	return err
}
