package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/internal/cli"
)

// cmdFeed: feed status | feed fetch NAME | feed accept NAME.
func cmdFeed(ctx context.Context, args []string) error {
	const usage = "usage: blocklistd feed status [--json] | feed fetch NAME | feed accept NAME"
	if len(args) == 0 {
		return errors.New(usage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("feed "+verb, flag.ContinueOnError)
	cli.Describe(fs, "blocklistd feed "+verb+map[string]string{"status": " [--json]", "fetch": " NAME", "accept": " NAME"}[verb]+" [--config FILE]",
		map[string]string{
			"status": "Show each feed: entries, last success, last failure and its reason.",
			"fetch":  "Fetch the feed NAME now (after editing a file:// feed, say).",
			"accept": "Fetch the feed NAME now and take an empty or shrunk list that its limits (max_shrink, allow_empty) refused.",
		}[verb])
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (status)")
	want := 1
	switch verb {
	case "status":
		want = 0
		cli.Describe(fs, "blocklistd feed status [--json] [--config FILE]",
			"Show each feed's entries, last success, and last failure with its reason.")
	case "fetch":
		cli.Describe(fs, "blocklistd feed fetch NAME [--config FILE]",
			"Fetch feed NAME now (after editing a file:// feed, say); its limits apply as to any fetch.")
	case "accept":
		cli.Describe(fs, "blocklistd feed accept NAME [--config FILE]",
			"Fetch feed NAME now and take an empty or shrunk list that its limits (max_shrink, allow_empty) refused; never HTML or binary.")
	case "-h", "-help", "--help":
		fmt.Println(usage + `

  status        each feed: entries, last success, last failure and its reason
  fetch NAME    fetch NAME now (after editing a file:// feed, say)
  accept NAME   fetch NAME now and take an empty or shrunk list that its
                limits (max_shrink, allow_empty) refused; never HTML or binary`)
		return nil
	default:
		return fmt.Errorf("feed %q: %s", verb, usage)
	}
	pos, err := cli.ParseArgs(fs, args[1:], want)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if verb == "status" {
		st, err := c.Feeds(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FEED\tENTRIES\tLAST SUCCESS\tFAILURES\tLAST FAILURE")
		for _, f := range st {
			ok := "never"
			if !f.LastSuccess.IsZero() {
				ok = f.LastSuccess.UTC().Format(time.RFC3339)
			}
			last := "-"
			if f.LastReason != "" {
				last = f.LastReason + ": " + client.SafeText(f.LastError)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", f.Name, f.Entries, ok, f.Failures, last)
		}
		return tw.Flush()
	}
	out, err := c.FetchFeed(ctx, pos[0], verb == "accept")
	if err != nil {
		return err
	}
	switch out.Status {
	case "refused":
		return fmt.Errorf("feed %s: refused (%s): %s; its %d entries stay", out.Feed, out.Reason, out.Error, out.Entries)
	case "loaded":
		fmt.Printf("feed %s: loaded, %d entries (%d added, %d removed)\n", out.Feed, out.Entries, out.Added, out.Removed)
	default:
		fmt.Printf("feed %s: %s, %d entries\n", out.Feed, out.Status, out.Entries)
	}
	return nil
}
