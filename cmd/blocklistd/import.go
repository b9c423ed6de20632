package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
)

// cmdImport sends a list file or CSV (prefix,ttl,reason) to the daemon,
// which bans every entry in one durable commit.
func cmdImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd import FILE|- [--ttl D] [--reason T] [--format list|csv] [--skip-invalid] [--force] [--config FILE]",
		`Ban every address or prefix of FILE (- reads standard input) in one durable
commit, pushed to the agents as one change. FILE is a list file (one entry
a line, # and ; comments) or CSV: prefix,ttl,reason (ttl and reason may be
empty; a first line "prefix,ttl,reason" is skipped). Every entry passes
the checks of a ban; one refused entry refuses the whole import unless
--skip-invalid.`)
	var af adminFlags
	af.register(fs)
	ttl := fs.String("ttl", "", "ban length for entries without their own (90m, 24h, 7d); default: the server's manual_ttl")
	reason := fs.String("reason", "", "reason for entries without their own; default \"imported from FILE\"")
	format := fs.String("format", "", "list or csv; default: CSV when the first entry holds a comma")
	skip := fs.Bool("skip-invalid", false, "import the valid entries when some are refused (they are listed)")
	force := fs.Bool("force", false, "ban entries covering the fleet's own hosts too")
	pos, err := cli.ParseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	o := client.ImportOptions{Name: pos[0], Format: *format, Reason: *reason, SkipInvalid: *skip, Force: *force}
	if *ttl != "" {
		if o.TTL, err = config.ParseDuration(*ttl); err != nil || o.TTL <= 0 {
			return fmt.Errorf("--ttl %q: want a positive duration such as 1h or 7d", *ttl)
		}
	}
	var in io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
		o.Name = filepath.Base(pos[0])
	}
	if o.Reason == "" {
		o.Reason = "imported from " + o.Name
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := c.Import(ctx, in, o)
	if err != nil {
		return err
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(os.Stderr, "skipped %s\n", client.SafeText(r))
	}
	if res.RejectedCount > len(res.Rejected) {
		fmt.Fprintf(os.Stderr, "... %d more skipped\n", res.RejectedCount-len(res.Rejected))
	}
	fmt.Printf("imported %d bans (%d skipped) in one commit in %s; blocklist version %d\n",
		res.Imported, res.RejectedCount, time.Since(start).Round(time.Millisecond), res.Version)
	return nil
}
