package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/apply"
	"github.com/rampart-sec/rampart/pkg/listfile"
)

// maxRejectedShown bounds the rejected lines printed; the summary counts all.
const maxRejectedShown = 100

func cmdApply(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	var files, allows stringList
	fs.Var(&files, "file", "list `FILE` to enforce (repeatable; - reads stdin; extra arguments are list files too)")
	fs.Var(&allows, "allow", "`PREFIX` never to block, e.g. the bastion's address (repeatable)")
	allowBroad := fs.Bool("allow-broad", false, "accept entries broader than /8 (IPv4) or /32 (IPv6)")
	bf := backendFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: blocklist-agent apply [flags] --file LIST [--file LIST...] [--allow PREFIX...]

Replace the blocklist this host enforces with the entries of the list files
(one address, prefix or FROM-TO range per line; # and ; start comments, so
Spamhaus DROP and FireHOL netset files load as they are), then exit.

Never blocked: loopback, link-local, this host's addresses and --allow.
Rejected lines are printed as FILE:LINE: reason and do not stop the rest.
Prints one summary line; exits non-zero if the firewall was not updated.

flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files = append(files, fs.Args()...)
	if len(files) == 0 {
		fs.Usage()
		return usageError(errors.New("no list files: give --file LIST (or - for stdin)"))
	}
	policy := firewall.Policy{AllowBroad: *allowBroad}
	for _, a := range allows {
		p, err := apply.ParsePrefix(a)
		if err != nil {
			return usageError(fmt.Errorf("--allow %q: %w", a, err))
		}
		policy.Allow = append(policy.Allow, p)
	}
	b, err := bf.open()
	if err != nil {
		return err
	}
	sum, err := apply.Run(ctx, b, apply.Config{
		Files:  files,
		Policy: policy,
		List:   listfile.Options{AllowBroad: *allowBroad},
	})
	sum.WriteRejected(os.Stderr, maxRejectedShown)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s\n", bf.name, sum)
	return nil
}

// backendFlagSet holds the flags shared by apply and flush.
type backendFlagSet struct {
	name, table, netns, pfctl string
	reject, forward, kill     bool
	verbose                   bool
}

func backendFlags(fs *flag.FlagSet) *backendFlagSet {
	bf := &backendFlagSet{}
	fs.StringVar(&bf.name, "backend", apply.DefaultBackend, "firewall `BACKEND`: "+strings.Join(apply.Backends(), " or "))
	fs.StringVar(&bf.table, "table", "rampart", "nftables table (inet family) or pf table `NAME`")
	if len(apply.Backends()) > 1 {
		fs.StringVar(&bf.netns, "netns", "", "nftables: work in the network namespace at `PATH` (/run/netns/NAME)")
		fs.BoolVar(&bf.reject, "reject", false, "nftables: reject with ICMP admin-prohibited instead of dropping")
		fs.BoolVar(&bf.forward, "forward", false, "nftables: also filter forwarded (routed) traffic")
	}
	fs.StringVar(&bf.pfctl, "pfctl", "", "pf: pfctl `PROGRAM` (default /sbin/pfctl)")
	fs.BoolVar(&bf.kill, "kill-states", false, "pf: kill existing states of newly blocked sources")
	fs.BoolVar(&bf.verbose, "v", false, "log each firewall change to stderr")
	return bf
}

func (bf *backendFlagSet) open() (firewall.Backend, error) {
	level := slog.LevelWarn
	if bf.verbose {
		level = slog.LevelInfo
	}
	b, err := apply.OpenBackend(bf.name, apply.BackendOptions{
		Table: bf.table, NetNS: bf.netns, Reject: bf.reject, Forward: bf.forward,
		Pfctl: bf.pfctl, KillStates: bf.kill,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return nil, usageError(err)
	}
	return b, nil
}

// parseFlags parses args; --help is not an error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError(err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
