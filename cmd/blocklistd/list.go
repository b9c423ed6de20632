package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/internal/cli"
)

func cmdList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd list [--json] [--source S] [--prefix P] [--limit N] [--config FILE]",
		"List the bans and the allowlist.")
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var f client.ListFilter
	fs.StringVar(&f.Source, "source", "", "only decisions of this source: manual, report, feed:NAME, feed: (every feed), allow (the allowlist only)")
	prefix := fs.String("prefix", "", "only entries inside this prefix or covering this address or prefix")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many decisions (and allowlist entries), in address order; 0: all")
	if _, err := cli.ParseArgs(fs, args, 0); err != nil {
		return err
	}
	if *prefix != "" {
		p, err := server.ParsePrefix(*prefix)
		if err != nil {
			return fmt.Errorf("--prefix: %w", err)
		}
		f.Prefix = p
	}
	if f.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 or more", f.Limit)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	l, err := c.ListFiltered(ctx, f)
	if err != nil {
		return err
	}
	return printList(os.Stdout, l, *asJSON)
}

func printList(w io.Writer, l client.Listing, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	return l.WriteTable(w)
}
