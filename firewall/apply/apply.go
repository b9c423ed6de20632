// Package apply is the one-shot enforcement behind `blocklist-agent
// apply` and `flush`: read list files, pass them through the safety
// [firewall.Policy], replace what a [firewall.Backend] enforces, and
// summarize what happened in one line.
//
// The command in cmd/blocklist-agent only parses flags; everything worth
// testing is here, and runs against [firewalltest.Backend] in tests.
//
// [firewalltest.Backend]: https://pkg.go.dev/github.com/rampart-sec/rampart/firewall/firewalltest
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/pkg/listfile"
)

// Config says what to enforce.
type Config struct {
	// Files are list files; "-" reads Stdin.
	Files []string
	Stdin io.Reader
	// Policy is applied to every entry (allowlist, width limits).
	Policy firewall.Policy
	// List tunes the list-file parser; its AllowBroad should match
	// Policy.AllowBroad.
	List listfile.Options
	// Now is the clock for Elapsed; nil means time.Now.
	Now func() time.Time
}

// Summary is what Run did.
type Summary struct {
	Files int
	Lines int
	// Rejected holds the first rejected lines of each file (up to
	// Config.List.MaxRejected, DefaultMaxRejected when 0); RejectedCount
	// counts them all.
	Rejected      []listfile.LineError
	RejectedCount int
	Stats         firewall.Stats
	Elapsed       time.Duration
}

// DefaultMaxRejected bounds the rejected lines kept per file.
const DefaultMaxRejected = 1000

// String is the one-line summary the command prints.
func (s Summary) String() string {
	return fmt.Sprintf("%d addresses, %d prefixes after merging, %d allowlisted, %d refused as too broad, %d rejected lines, %s",
		s.Stats.Addresses, s.Stats.Prefixes, s.Stats.Allowlisted, s.Stats.Refused, s.RejectedCount, s.Elapsed.Round(time.Millisecond))
}

// WriteRejected prints the first max rejected lines as FILE:LINE: reason:
// "text", then how many more were rejected in all.
func (s Summary) WriteRejected(w io.Writer, max int) {
	for i, r := range s.Rejected {
		if i == max {
			break
		}
		fmt.Fprintf(w, "%s:%d: %s: %q\n", r.File, r.Line, r.Reason, r.Text)
	}
	if shown := min(len(s.Rejected), max); s.RejectedCount > shown {
		fmt.Fprintf(w, "... and %d more rejected lines\n", s.RejectedCount-shown)
	}
}

// ParsePrefix reads a prefix ("192.0.2.0/24") or a bare address, which
// stands for itself (a /32 or /128), as --allow takes them.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Run reads cfg.Files, builds the set and replaces what b enforces. A
// rejected line is reported in the Summary and skipped; a file that cannot
// be read stops Run before the firewall is touched, so a missing list
// never silently unblocks its entries.
func Run(ctx context.Context, b firewall.Backend, cfg Config) (Summary, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	var sum Summary
	if len(cfg.Files) == 0 {
		return sum, errors.New("no list files given")
	}
	set, err := build(cfg, &sum)
	if err != nil {
		return sum, err
	}
	if err := firewall.Replace(ctx, b, set); err != nil {
		return sum, err
	}
	sum.Elapsed = now().Sub(start)
	return sum, nil
}

// build streams every list through the policy into a compact set; the
// parsed entries are never held as a whole.
func build(cfg Config, sum *Summary) (*firewall.Set, error) {
	if cfg.List.MaxRejected == 0 {
		cfg.List.MaxRejected = DefaultMaxRejected
	}
	var readErr error
	stdinUsed := false
	entries := func(yield func(netip.Prefix) bool) {
		for _, name := range cfg.Files {
			stopped := false
			res, err := scanList(name, cfg, &stdinUsed, func(p netip.Prefix) {
				if !stopped && !yield(p) {
					stopped = true
				}
			})
			sum.Files++
			sum.Lines += res.Lines
			sum.Rejected = append(sum.Rejected, res.Rejected...)
			sum.RejectedCount += res.RejectedCount
			if err != nil {
				readErr = err
				return
			}
			if stopped {
				return
			}
		}
	}
	set, st, err := cfg.Policy.BuildSet(entries)
	sum.Stats = st
	if readErr != nil {
		return nil, readErr
	}
	return set, err
}

func scanList(name string, cfg Config, stdinUsed *bool, fn func(netip.Prefix)) (listfile.Result, error) {
	if name == "-" {
		if *stdinUsed {
			return listfile.Result{}, errors.New(`"-" (stdin) given twice`)
		}
		*stdinUsed = true
		in := cfg.Stdin
		if in == nil {
			in = os.Stdin
		}
		return listfile.Scan(in, "-", cfg.List, fn)
	}
	f, err := os.Open(name)
	if err != nil {
		return listfile.Result{}, fmt.Errorf("list file: %w", err)
	}
	defer f.Close()
	return listfile.Scan(f, name, cfg.List, fn)
}

// Flush removes everything the backend installed.
func Flush(ctx context.Context, b firewall.Backend) error {
	return b.Remove(ctx)
}

// BackendOptions select and configure a backend by name.
type BackendOptions struct {
	Table string // both
	// nftables
	NetNS   string
	Reject  bool
	Forward bool
	// pf
	Pfctl      string
	KillStates bool

	Logger *slog.Logger
}

// Backends lists the backends this build offers.
func Backends() []string { return backendNames }

// OpenBackend returns the named backend ("nftables" or "pf").
func OpenBackend(name string, o BackendOptions) (firewall.Backend, error) {
	switch name {
	case "pf":
		if o.NetNS != "" || o.Reject || o.Forward {
			return nil, errors.New("--netns, --reject and --forward apply to nftables only (pf.conf decides how <table> is blocked)")
		}
		return newPF(o)
	case "nftables":
		if o.Pfctl != "" || o.KillStates {
			return nil, errors.New("--pfctl and --kill-states apply to pf only")
		}
		return newNftables(o)
	}
	return nil, fmt.Errorf("unknown backend %q (this build offers: %s)", name, strings.Join(backendNames, ", "))
}
