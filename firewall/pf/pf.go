// Package pf enforces a Rampart blocklist with OpenBSD or FreeBSD pf, by
// running pfctl on a table that pf.conf declares and blocks:
//
//	table <rampart> persist
//	block drop in quick from <rampart>
//
// Full syncs use `pfctl -t T -T replace -f FILE` (pf swaps the table's
// contents in one ioctl), deltas `-T add -f` and `-T delete -f`. Before
// loading, the entry count is checked against pf's table-entries limit
// (`pfctl -s memory`; 200,000 by default on OpenBSD), and a set that would
// not fit is refused whole with an error naming `set limit table-entries`:
// never a half-loaded table.
//
// The package builds on every platform; it is tested on Linux against a
// fake pfctl (testdata/fakepfctl) that implements the documented table
// commands and file format.
package pf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// Defaults for the zero Options.
const (
	DefaultTable     = "rampart"
	DefaultPfctl     = "/sbin/pfctl"
	DefaultKillLimit = 256
	// DefaultTableEntries is OpenBSD's default table-entries limit, used
	// when `pfctl -s memory` does not report one.
	DefaultTableEntries = 200000
)

// Options configure a [Backend].
type Options struct {
	// Table is the pf table name (without <>); "" means DefaultTable.
	Table string
	// Pfctl is the pfctl program; "" means DefaultPfctl.
	Pfctl string
	// KillStates kills the existing states of newly blocked sources
	// (`pfctl -k SOURCE`), so an established connection is cut too.
	KillStates bool
	// KillLimit caps the pfctl -k runs per change; 0 means
	// DefaultKillLimit. Sources beyond it are logged, not killed.
	KillLimit int
	// MaxEntries overrides the table-entries limit read from pfctl.
	MaxEntries int
	// TempDir holds the short-lived table files; "" means os.TempDir().
	TempDir string
	// Logger receives one line per change; nil discards.
	Logger *slog.Logger
}

// Backend is the pf [firewall.Backend].
type Backend struct {
	opts Options
	log  *slog.Logger
}

var _ firewall.Backend = (*Backend)(nil)

// ErrNoTable reports that pf.conf does not declare the table.
var ErrNoTable = errors.New("table missing from the pf ruleset")

// ErrTooManyEntries reports a set larger than pf's table-entries limit.
var ErrTooManyEntries = errors.New("more entries than pf's table-entries limit")

// New returns a backend for opts. It does not run pfctl.
func New(opts Options) (*Backend, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if opts.Pfctl == "" {
		opts.Pfctl = DefaultPfctl
	}
	if opts.KillLimit <= 0 {
		opts.KillLimit = DefaultKillLimit
	}
	if len(opts.Table) > 31 || !validName(opts.Table) {
		return nil, fmt.Errorf("pf: table name %q: at most 31 letters, digits, _ and -", opts.Table)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Backend{opts: opts, log: log}, nil
}

func validName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// ConfLines are the pf.conf lines that declare and enforce table.
func ConfLines(table string) string {
	return fmt.Sprintf("table <%s> persist\nblock drop in quick from <%s>\n", table, table)
}

// Replace makes the table hold exactly set.
func (b *Backend) Replace(ctx context.Context, set *netipx.IPSet) error {
	if set == nil {
		set = &netipx.IPSet{}
	}
	if err := b.checkTable(ctx); err != nil {
		return err
	}
	prefixes := set.Prefixes()
	if err := b.checkLimit(ctx, len(prefixes)); err != nil {
		return err
	}
	var old *netipx.IPSet
	if b.opts.KillStates {
		var err error
		if old, err = b.Current(ctx); err != nil {
			return err
		}
	}
	if err := b.withFile(prefixes, func(file string) error {
		_, err := b.pfctl(ctx, "-t", b.opts.Table, "-T", "replace", "-f", file)
		return err
	}); err != nil {
		return err
	}
	b.log.Info("pf: replaced table", "table", b.opts.Table, "entries", len(prefixes))
	if b.opts.KillStates {
		var nb netipx.IPSetBuilder
		nb.AddSet(set)
		nb.RemoveSet(old)
		fresh, _ := nb.IPSet()
		b.killStates(ctx, fresh.Prefixes())
	}
	return nil
}

// Apply removes, then adds, as [firewall.Delta] says. pf matches table
// entries by exact network, so the change is worked out on the set of
// addresses (removing 192.0.2.7 from a blocked 192.0.2.0/24 splits it) and
// sent as `-T add -f` then `-T delete -f` of the prefixes that differ.
func (b *Backend) Apply(ctx context.Context, d firewall.Delta) error {
	if err := b.checkTable(ctx); err != nil {
		return err
	}
	cur, err := b.Current(ctx)
	if err != nil {
		return err
	}
	next, err := d.ApplyTo(cur)
	if err != nil {
		return fmt.Errorf("pf: %w", err)
	}
	gone, added := diffPrefixes(cur.Prefixes(), next.Prefixes())
	if len(gone) == 0 && len(added) == 0 {
		return nil
	}
	// Additions go in before deletions, so no address that stays blocked
	// is ever out of the table; for that moment the table holds both.
	if err := b.checkLimit(ctx, len(cur.Prefixes())+len(added)); err != nil {
		return err
	}
	if len(added) > 0 {
		if err := b.withFile(added, func(file string) error {
			_, err := b.pfctl(ctx, "-t", b.opts.Table, "-T", "add", "-f", file)
			return err
		}); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		if err := b.withFile(gone, func(file string) error {
			_, err := b.pfctl(ctx, "-t", b.opts.Table, "-T", "delete", "-f", file)
			return err
		}); err != nil {
			return err
		}
	}
	b.log.Info("pf: applied delta", "table", b.opts.Table, "deleted", len(gone), "added", len(added))
	if b.opts.KillStates {
		var fb netipx.IPSetBuilder
		for _, p := range added {
			fb.AddPrefix(p)
		}
		fb.RemoveSet(cur)
		fresh, _ := fb.IPSet()
		b.killStates(ctx, fresh.Prefixes())
	}
	return nil
}

// Current parses `pfctl -t T -T show`.
func (b *Backend) Current(ctx context.Context) (*netipx.IPSet, error) {
	out, err := b.pfctl(ctx, "-t", b.opts.Table, "-T", "show")
	if err != nil {
		return nil, err
	}
	set, err := ParseShow(out)
	if err != nil {
		return nil, fmt.Errorf("pf: pfctl -t %s -T show: %w", b.opts.Table, err)
	}
	return set, nil
}

// ParseShow reads the output of `pfctl -T show`: one address or network
// per line, indented, a leading "!" for negated entries (subtracted).
func ParseShow(out []byte) (*netipx.IPSet, error) {
	var sb netipx.IPSetBuilder
	var neg []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		f := strings.TrimSpace(sc.Text())
		if f == "" {
			continue
		}
		not := strings.HasPrefix(f, "!")
		f = strings.TrimPrefix(f, "!")
		p, err := parseEntry(f)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if not {
			neg = append(neg, p)
		} else {
			sb.AddPrefix(p)
		}
	}
	for _, p := range neg {
		sb.RemovePrefix(p)
	}
	return sb.IPSet()
}

func parseEntry(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Remove empties the table. The table itself belongs to pf.conf.
func (b *Backend) Remove(ctx context.Context) error {
	if err := b.checkTable(ctx); err != nil {
		if errors.Is(err, ErrNoTable) {
			return nil
		}
		return err
	}
	if _, err := b.pfctl(ctx, "-t", b.opts.Table, "-T", "flush"); err != nil {
		return err
	}
	b.log.Info("pf: flushed table", "table", b.opts.Table)
	return nil
}

// checkTable fails with ErrNoTable, quoting the pf.conf lines to add,
// unless the loaded ruleset declares the table. pfctl would otherwise
// create an unreferenced table that blocks nothing.
func (b *Backend) checkTable(ctx context.Context) error {
	out, err := b.pfctl(ctx, "-s", "Tables")
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(out)) {
		if name == b.opts.Table {
			return nil
		}
	}
	return fmt.Errorf("pf: %w: table <%s>; add these lines to /etc/pf.conf and reload it with `pfctl -f /etc/pf.conf`:\n\n%s", ErrNoTable, b.opts.Table, indent(ConfLines(b.opts.Table)))
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n\t")
}

// checkLimit refuses a table of n entries that pf's table-entries limit
// would not hold.
func (b *Backend) checkLimit(ctx context.Context, n int) error {
	limit := b.opts.MaxEntries
	if limit <= 0 {
		out, err := b.pfctl(ctx, "-s", "memory")
		if err != nil {
			return err
		}
		limit = ParseTableEntriesLimit(out)
	}
	if n > limit {
		return fmt.Errorf("pf: table <%s>: %d entries: %w (%d); raise it in /etc/pf.conf with `set limit table-entries %d` and reload, or block less", b.opts.Table, n, ErrTooManyEntries, limit, roundUp(n))
	}
	return nil
}

// roundUp suggests a limit with headroom: n plus a quarter, to 10,000s.
func roundUp(n int) int {
	m := n + n/4
	return (m + 9999) / 10000 * 10000
}

// ParseTableEntriesLimit reads the table-entries hard limit from the
// output of `pfctl -s memory`, or DefaultTableEntries.
func ParseTableEntriesLimit(out []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "table-entries" && f[1] == "hard" && f[2] == "limit" {
			if n, err := strconv.Atoi(f[3]); err == nil && n > 0 {
				return n
			}
		}
	}
	return DefaultTableEntries
}

// killStates runs pfctl -k for each newly blocked source, up to the
// limit; a failure is logged, not returned: the block is in place.
func (b *Backend) killStates(ctx context.Context, sources []netip.Prefix) {
	for i, p := range sources {
		if i == b.opts.KillLimit {
			b.log.Warn("pf: not killing states of further newly blocked sources", "table", b.opts.Table, "skipped", len(sources)-i, "kill_limit", b.opts.KillLimit)
			return
		}
		if _, err := b.pfctl(ctx, "-k", entry(p)); err != nil {
			b.log.Warn("pf: kill states", "source", p, "err", err)
		}
	}
}

// withFile writes prefixes to a private temporary file in pfctl's table
// file format and runs fn with its name.
func (b *Backend) withFile(prefixes []netip.Prefix, fn func(file string) error) error {
	f, err := os.CreateTemp(b.opts.TempDir, "rampart-"+b.opts.Table+"-*.txt")
	if err != nil {
		return fmt.Errorf("pf: table file: %w", err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriterSize(f, 64<<10)
	for _, p := range prefixes {
		w.WriteString(entry(p))
		w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return fmt.Errorf("pf: write table file %s: %w", f.Name(), err)
	}
	return fn(f.Name())
}

func (b *Backend) pfctl(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.opts.Pfctl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pf: %s %s: %w: %s", b.opts.Pfctl, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// diffPrefixes returns the prefixes only in old and those only in new;
// both are sorted as IPSet.Prefixes returns them.
func diffPrefixes(old, new []netip.Prefix) (gone, added []netip.Prefix) {
	in := make(map[netip.Prefix]bool, len(new))
	for _, p := range new {
		in[p] = true
	}
	was := make(map[netip.Prefix]bool, len(old))
	for _, p := range old {
		was[p] = true
		if !in[p] {
			gone = append(gone, p)
		}
	}
	for _, p := range new {
		if !was[p] {
			added = append(added, p)
		}
	}
	return gone, added
}

// entry spells a prefix as pfctl does: a single address without a length.
func entry(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
