package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/rampart-sec/rampart/firewall/apply"
)

func cmdFlush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flush", flag.ContinueOnError)
	bf := backendFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: blocklist-agent flush [flags]

Remove everything Rampart installed in the firewall: with nftables the
whole "inet rampart" table, with pf the entries of the <rampart> table
(the table and its block rule stay in pf.conf). Nothing else is touched.

flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	b, err := bf.open()
	if err != nil {
		return err
	}
	if err := apply.Flush(ctx, b); err != nil {
		return err
	}
	fmt.Printf("%s: removed table %s\n", bf.name, bf.table)
	return nil
}
