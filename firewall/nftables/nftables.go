//go:build linux

package nftables

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"

	"github.com/rampart-sec/rampart/firewall"
)

// DefaultTable is the table name when Options.Table is empty.
const DefaultTable = "rampart"

// Options configure a [Backend].
type Options struct {
	// Table is the name of Rampart's inet table; "" means DefaultTable.
	Table string
	// NetNS, when set, is a network namespace file (/run/netns/NAME):
	// every netlink socket is opened in that namespace.
	NetNS string
	// Reject answers blocked packets with ICMP admin-prohibited instead
	// of dropping them silently.
	Reject bool
	// Forward also filters routed traffic (a forward-hook chain).
	Forward bool
	// Logger receives one line per change; nil discards.
	Logger *slog.Logger
}

// Backend is the nftables [firewall.Backend]. It is safe for concurrent
// use; calls are serialized.
type Backend struct {
	opts   Options
	log    *slog.Logger
	layout layout

	mu sync.Mutex
	// ranges mirrors what net4 and net6 hold, so deltas can merge and
	// split intervals without dumping the kernel's sets; nil when unknown
	// (after a restart or a failed batch).
	ranges *netipx.IPSet
}

var (
	_ firewall.Backend     = (*Backend)(nil)
	_ firewall.SetReplacer = (*Backend)(nil)
)

// New returns a backend for opts. It does not touch the kernel.
func New(opts Options) (*Backend, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if len(opts.Table) > 255 || !validName(opts.Table) {
		return nil, fmt.Errorf("nftables: table name %q: use letters, digits, _ and - only", opts.Table)
	}
	if opts.NetNS != "" {
		if _, err := os.Stat(opts.NetNS); err != nil {
			return nil, fmt.Errorf("nftables: network namespace: %w", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Backend{opts: opts, log: log, layout: newLayout(opts)}, nil
}

func validName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// Set names, and the marker that says a rule is laid out as this version
// lays it out (see layout.matches).
const (
	setAddr4 = "addr4"
	setNet4  = "net4"
	setAddr6 = "addr6"
	setNet6  = "net6"
)

// layout is everything Replace installs, as google/nftables objects.
type layout struct {
	table  *nft.Table
	chains []*nft.Chain
	sets   []*nft.Set // addr4, net4, addr6, net6
	marker string
}

func newLayout(opts Options) layout {
	t := &nft.Table{Family: nft.TableFamilyINet, Name: opts.Table}
	l := layout{table: t}
	accept := nft.ChainPolicyAccept
	hooks := []struct {
		name string
		hook *nft.ChainHook
	}{{"input", nft.ChainHookInput}}
	if opts.Forward {
		hooks = append(hooks, struct {
			name string
			hook *nft.ChainHook
		}{"forward", nft.ChainHookForward})
	}
	for _, h := range hooks {
		l.chains = append(l.chains, &nft.Chain{
			Name: h.name, Table: t, Type: nft.ChainTypeFilter, Hooknum: h.hook,
			Priority: nft.ChainPriorityRef(*nft.ChainPriorityFilter - 10), Policy: &accept,
		})
	}
	// Fixed set IDs keep the batch byte-for-byte reproducible (golden tests).
	l.sets = []*nft.Set{
		{Table: t, Name: setAddr4, ID: 1, KeyType: nft.TypeIPAddr},
		{Table: t, Name: setNet4, ID: 2, KeyType: nft.TypeIPAddr, Interval: true},
		{Table: t, Name: setAddr6, ID: 3, KeyType: nft.TypeIP6Addr},
		{Table: t, Name: setNet6, ID: 4, KeyType: nft.TypeIP6Addr, Interval: true},
	}
	verdict := "drop"
	if opts.Reject {
		verdict = "reject"
	}
	l.marker = "rampart v1 " + verdict
	return l
}

func (l layout) rules(c *nft.Chain, reject bool) []*nft.Rule {
	var rules []*nft.Rule
	for _, s := range l.sets {
		proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
		if s.KeyType.Name == nft.TypeIP6Addr.Name {
			proto, off, n = unix.NFPROTO_IPV6, 8, 16
		}
		var verdict expr.Any = &expr.Verdict{Kind: expr.VerdictDrop}
		if reject {
			verdict = &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
		}
		rules = append(rules, &nft.Rule{
			Table: l.table, Chain: c,
			Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
				&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
				&expr.Counter{},
				verdict,
			},
			UserData: userdata.AppendString(nil, userdata.TypeComment, l.marker),
		})
	}
	return rules
}

// Replace makes the enforced set exactly set, in one transaction.
func (b *Backend) Replace(ctx context.Context, set *netipx.IPSet) error {
	if set == nil {
		set = &netipx.IPSet{}
	}
	singles, ranges := splitRanges(set.Ranges())
	n4 := 0
	for _, a := range singles {
		if a.Is4() {
			n4++
		}
	}
	return b.replace(ctx, ranges, [2]int{n4, len(singles) - n4}, func(bt *batch) int {
		return bt.addElements(b.opts.Table, singles, ranges, unix.NFT_MSG_NEWSETELEM)
	})
}

// ReplaceSet is Replace for a compact [firewall.Set]: its ranges are
// encoded straight into the batch, with no netipx.IPSet in between.
func (b *Backend) ReplaceSet(ctx context.Context, s *firewall.Set) error {
	var ranges []netipx.IPRange
	for r := range s.Wide() {
		ranges = append(ranges, r)
	}
	var singles [2]int
	for range s.Singles4() {
		singles[0]++
	}
	for range s.Singles6() {
		singles[1]++
	}
	return b.replace(ctx, ranges, singles, func(bt *batch) int {
		n := 0
		w := bt.elements(b.opts.Table, setAddr4, unix.NFT_MSG_NEWSETELEM)
		for a := range s.Singles4() {
			w.add(a[:], false)
		}
		w.close()
		n += w.n
		w = bt.elements(b.opts.Table, setAddr6, unix.NFT_MSG_NEWSETELEM)
		for a := range s.Singles6() {
			w.add(a[:], false)
		}
		w.close()
		n += w.n
		return n + bt.addElements(b.opts.Table, nil, ranges, unix.NFT_MSG_NEWSETELEM)
	})
}

// replace sends the head of a full replace (refill or rebuild), the
// elements fill writes, and records the intervals installed.
func (b *Backend) replace(ctx context.Context, ranges []netipx.IPRange, singles [2]int, fill func(*batch) int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ranges = nil
	rebuild, err := b.needsRebuild(singles)
	if err != nil {
		return err
	}
	head, err := b.layout.replaceHead(rebuild, b.opts.Reject, singles)
	if err != nil {
		return err
	}
	bt := newBatch()
	bt.buf = slices.Grow(bt.buf, len(head)+batchSize(singles, ranges))
	bt.addRaw(head)
	elements := fill(bt)
	bt.end()
	if err := b.send(ctx, bt); err != nil {
		return fmt.Errorf("nftables: replace table inet %s with %d elements: %w", b.opts.Table, elements, err)
	}
	b.ranges = rangesOnly(ranges)
	b.log.Info("nftables: replaced blocklist", "table", b.opts.Table, "elements", elements, "rebuilt", rebuild, "bytes", len(bt.buf))
	return nil
}

// needsRebuild reports whether the table is missing or laid out
// differently from what this backend installs (another version, or
// options changed), or a hash set is too small for the singles it must
// hold; then Replace recreates it instead of refilling sets.
func (b *Backend) needsRebuild(singles [2]int) (bool, error) {
	c, done, err := b.conn()
	if err != nil {
		return false, err
	}
	defer done()
	if _, err := c.ListTableOfFamily(b.opts.Table, nft.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("nftables: look up table inet %s: %w", b.opts.Table, err)
	}
	sets, err := c.GetSets(b.layout.table)
	if err != nil {
		return false, fmt.Errorf("nftables: list sets of table inet %s: %w", b.opts.Table, err)
	}
	if len(sets) != len(b.layout.sets) {
		return true, nil
	}
	byName := map[string]*nft.Set{}
	for _, s := range sets {
		byName[s.Name] = s
	}
	for _, want := range b.layout.sets {
		got := byName[want.Name]
		if got == nil || got.Interval != want.Interval || got.KeyType.Name != want.KeyType.Name {
			return true, nil
		}
		if !want.Interval && !fits(got.Size, singles[hashIndex(want.Name)]) {
			return true, nil
		}
	}
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list chains: %w", err)
	}
	var ours []*nft.Chain
	for _, ch := range chains {
		if ch.Table.Name == b.opts.Table {
			ours = append(ours, ch)
		}
	}
	if len(ours) != len(b.layout.chains) {
		return true, nil
	}
	for _, want := range b.layout.chains {
		rules, err := c.GetRules(b.layout.table, want)
		if err != nil {
			return true, nil // chain missing
		}
		if len(rules) != len(b.layout.sets) {
			return true, nil
		}
		for _, r := range rules {
			if m, _ := userdata.GetString(r.UserData, userdata.TypeComment); m != b.layout.marker {
				return true, nil
			}
		}
	}
	return false, nil
}

// replaceHead returns the messages that precede the elements of a full
// replace, encoded by google/nftables: flush the four sets, or delete and
// recreate the whole table.
func (l layout) replaceHead(rebuild, reject bool, singles [2]int) ([]byte, error) {
	return record(func(c *nft.Conn) {
		c.AddTable(l.table)
		if !rebuild {
			for _, s := range l.sets {
				c.FlushSet(s)
			}
			return
		}
		// add-then-delete never fails on a missing table, and the whole
		// table (sets, chains, rules) goes in the same transaction.
		c.DelTable(l.table)
		c.AddTable(l.table)
		for _, s := range l.sets {
			if !s.Interval {
				sized := *s
				sized.Size = hashSize(singles[hashIndex(s.Name)])
				s = &sized
			}
			c.AddSet(s, nil)
		}
		for _, ch := range l.chains {
			c.AddChain(ch)
			for _, r := range l.rules(ch, reject) {
				c.AddRule(r)
			}
		}
	})
}

// Apply adds and removes entries in place, in one transaction.
func (b *Backend) Apply(ctx context.Context, d firewall.Delta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ranges == nil {
		cur, err := b.readRanges()
		if err != nil {
			return err
		}
		b.ranges = cur
	}
	plan, err := b.planDelta(d, b.singlesIn)
	if err != nil {
		return err
	}
	if plan.empty() {
		return nil
	}
	bt, n := b.deltaBatch(plan), plan.elements()
	b.ranges = nil // unknown until the kernel confirms
	if err := b.send(ctx, bt); err != nil {
		return fmt.Errorf("nftables: apply %d additions and %d removals to table inet %s: %w", len(d.Add), len(d.Remove), b.opts.Table, err)
	}
	b.ranges = plan.ranges
	b.log.Info("nftables: applied delta", "table", b.opts.Table, "add", len(d.Add), "remove", len(d.Remove), "elements", n)
	return nil
}

// deltaBatch encodes a planned delta as one transaction.
func (b *Backend) deltaBatch(plan deltaPlan) *batch {
	bt := newBatch()
	// A single address may or may not be there. Adding it first (a no-op
	// when present) and then deleting it, in the same transaction, removes
	// it either way on every kernel (NFT_MSG_DESTROYSETELEM would need
	// Linux 6.3; Debian 12 runs 6.1). Intervals come from the cache, so
	// they are known to be present.
	bt.addElements(b.opts.Table, plan.delSingles, nil, unix.NFT_MSG_NEWSETELEM)
	bt.addElements(b.opts.Table, plan.delSingles, plan.delRanges, unix.NFT_MSG_DELSETELEM)
	bt.addElements(b.opts.Table, plan.addSingles, plan.addRanges, unix.NFT_MSG_NEWSETELEM)
	bt.end()
	return bt
}

// Current reads what the kernel enforces.
func (b *Backend) Current(ctx context.Context) (*netipx.IPSet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb netipx.IPSetBuilder
	err := b.readSets(func(s *nft.Set, elems []nft.SetElement) error {
		rs, err := elementRanges(s, elems)
		for _, r := range rs {
			sb.AddRange(r)
		}
		return err
	}, setAddr4, setNet4, setAddr6, setNet6)
	if err != nil {
		return nil, err
	}
	return sb.IPSet()
}

// readRanges reads the interval sets only.
func (b *Backend) readRanges() (*netipx.IPSet, error) {
	var sb netipx.IPSetBuilder
	err := b.readSets(func(s *nft.Set, elems []nft.SetElement) error {
		rs, err := elementRanges(s, elems)
		for _, r := range rs {
			sb.AddRange(r)
		}
		return err
	}, setNet4, setNet6)
	if err != nil {
		return nil, err
	}
	return sb.IPSet()
}

// readSets dumps the named sets of the table; a missing table reads as
// empty sets.
func (b *Backend) readSets(fn func(*nft.Set, []nft.SetElement) error, names ...string) error {
	c, done, err := b.conn()
	if err != nil {
		return err
	}
	defer done()
	for _, name := range names {
		s, err := c.GetSetByName(b.layout.table, name)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("nftables: look up set %s in table inet %s: %w", name, b.opts.Table, err)
		}
		elems, err := stableElements(c, s)
		if err != nil {
			return fmt.Errorf("nftables: read set %s in table inet %s: %w", name, b.opts.Table, err)
		}
		if err := fn(s, elems); err != nil {
			return fmt.Errorf("nftables: set %s in table inet %s: %w", name, b.opts.Table, err)
		}
	}
	return nil
}

// Remove deletes Rampart's table, and nothing else.
func (b *Backend) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ranges = nil
	head, err := record(func(c *nft.Conn) {
		c.AddTable(b.layout.table)
		c.DelTable(b.layout.table)
	})
	if err != nil {
		return err
	}
	bt := newBatch()
	bt.addRaw(head)
	bt.end()
	if err := b.send(ctx, bt); err != nil {
		return fmt.Errorf("nftables: delete table inet %s: %w", b.opts.Table, err)
	}
	b.log.Info("nftables: removed table", "table", b.opts.Table)
	return nil
}

// conn opens a google/nftables connection in the configured namespace.
func (b *Backend) conn() (*nft.Conn, func(), error) {
	var opts []nft.ConnOption
	done := func() {}
	if b.opts.NetNS != "" {
		f, err := os.Open(b.opts.NetNS)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables: network namespace: %w", err)
		}
		opts = append(opts, nft.WithNetNSFd(int(f.Fd())))
		done = func() { f.Close() }
	}
	c, err := nft.New(opts...)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("nftables: netlink: %w", err)
	}
	return c, done, nil
}

// dial opens a raw netfilter netlink socket in the configured namespace.
func (b *Backend) dial() (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if b.opts.NetNS != "" {
		f, err := os.Open(b.opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("nftables: network namespace: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("nftables: netlink: %w", err)
	}
	return c, nil
}

// record runs fill against a google/nftables connection that captures
// the messages instead of sending them, and returns them encoded, without
// the batch begin and end (the caller frames its own batch).
func record(fill func(*nft.Conn)) ([]byte, error) {
	var msgs []netlink.Message
	c, err := nft.New(nft.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		for _, m := range req {
			if t := uint16(m.Header.Type); t != unix.NFNL_MSG_BATCH_BEGIN && t != unix.NFNL_MSG_BATCH_END {
				msgs = append(msgs, m)
			}
			if m.Header.Flags&netlink.Acknowledge != 0 {
				acks = append(acks, netlink.Message{
					Header: netlink.Header{Length: 20, Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID},
					Data:   []byte{0, 0, 0, 0},
				})
			}
		}
		return acks, nil
	}))
	if err != nil {
		return nil, err
	}
	fill(c)
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: encode: %w", err)
	}
	var out []byte
	for _, m := range msgs {
		out = appendMessage(out, uint16(m.Header.Type), uint16(m.Header.Flags&^netlink.Acknowledge), 0, m.Data)
	}
	return out, nil
}

// splitRanges separates single addresses (for the hash sets) from wider
// ranges (for the interval sets). Ranges of a normalized IPSet never
// touch, so the interval sets never see overlapping or adjacent entries.
func splitRanges(rs []netipx.IPRange) (singles []netip.Addr, ranges []netipx.IPRange) {
	n := 0
	for _, r := range rs {
		if r.From() == r.To() {
			n++
		}
	}
	singles = make([]netip.Addr, 0, n)
	ranges = make([]netipx.IPRange, 0, len(rs)-n)
	for _, r := range rs {
		if r.From() == r.To() {
			singles = append(singles, r.From())
		} else {
			ranges = append(ranges, r)
		}
	}
	return singles, ranges
}

func rangesOnly(rs []netipx.IPRange) *netipx.IPSet {
	var sb netipx.IPSetBuilder
	for _, r := range rs {
		sb.AddRange(r)
	}
	s, _ := sb.IPSet()
	return s
}

// elementRanges turns a dumped set back into ranges: hash sets hold single
// addresses; interval sets hold a start element and an end element (one
// past the last address, flagged IntervalEnd), and a start with no end
// runs to the last address of the family.
func elementRanges(s *nft.Set, elems []nft.SetElement) ([]netipx.IPRange, error) {
	var rs []netipx.IPRange
	if !s.Interval {
		for _, e := range elems {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				return nil, fmt.Errorf("element key of %d bytes is not an address", len(e.Key))
			}
			rs = append(rs, netipx.IPRangeFrom(a, a))
		}
		return rs, nil
	}
	type point struct {
		a   netip.Addr
		end bool
	}
	pts := make([]point, 0, len(elems))
	for _, e := range elems {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			return nil, fmt.Errorf("element key of %d bytes is not an address", len(e.Key))
		}
		pts = append(pts, point{a, e.IntervalEnd})
	}
	// At equal keys the end of one interval sorts before the start of the
	// next one (adjacent intervals).
	sort.Slice(pts, func(i, j int) bool {
		if c := pts[i].a.Compare(pts[j].a); c != 0 {
			return c < 0
		}
		return pts[i].end && !pts[j].end
	})
	var start netip.Addr
	open := false
	for _, p := range pts {
		switch {
		case !p.end && !open:
			start, open = p.a, true
		case p.end && open:
			rs = append(rs, netipx.IPRangeFrom(start, p.a.Prev()))
			open = false
		case p.end && !open:
			// A lone end element (some tools add one at the family's
			// zero address) closes nothing.
		default:
			return nil, fmt.Errorf("interval starting at %s has no end before %s", start, p.a)
		}
	}
	if open {
		last := netipx.PrefixLastIP(netip.PrefixFrom(start, 0))
		rs = append(rs, netipx.IPRangeFrom(start, last))
	}
	return rs, nil
}

// stableElements dumps a set until two dumps in a row agree. A netlink
// dump of a hash set is not a snapshot: while the kernel resizes the
// table (it shrinks it in the background after a replace freed the old
// elements) a dump can miss entries. Lookups are never affected.
func stableElements(c *nft.Conn, s *nft.Set) ([]nft.SetElement, error) {
	prev, err := c.GetSetElements(s)
	if err != nil {
		return nil, err
	}
	for attempt := 1; attempt <= 8; attempt++ {
		cur, err := c.GetSetElements(s)
		if err != nil {
			return nil, err
		}
		if len(cur) == len(prev) && elementSum(cur) == elementSum(prev) {
			return cur, nil
		}
		prev = cur
		time.Sleep(time.Duration(attempt) * 25 * time.Millisecond)
	}
	return nil, errors.New("the set kept changing between dumps (kernel resizing it, or another writer); try again")
}

// elementSum is an order-independent checksum of a dump.
func elementSum(elems []nft.SetElement) uint64 {
	var sum uint64
	for _, e := range elems {
		h := fnv.New64a()
		h.Write(e.Key)
		if e.IntervalEnd {
			h.Write([]byte{1})
		}
		sum += h.Sum64()
	}
	return sum
}

// Hash sets are created with a size: the kernel then uses its fixed-size
// hash, which loads a million addresses in a fraction of the time the
// resizable one takes (it never rehashes). The size is a hard limit on
// the elements, so it leaves room for deltas: at least twice the load,
// and at least 65,536. A later load that outgrows it rebuilds the table.
func hashSize(n int) uint32 {
	size := uint32(1 << 16)
	for size < 1<<31 && int(size) < 2*n {
		size <<= 1
	}
	return size
}

// fits reports whether a hash set of size (0: unlimited) has room for n
// elements plus headroom for deltas.
func fits(size uint32, n int) bool {
	return size == 0 || int64(n)+int64(n)/8+1024 <= int64(size)
}

func hashIndex(set string) int {
	if set == setAddr6 {
		return 1
	}
	return 0
}

// batchSize estimates the encoded size of the elements, so the batch
// buffer is allocated once.
func batchSize(singles [2]int, ranges []netipx.IPRange) int {
	n := 16*singles[0] + 28*singles[1] + 64<<10
	for _, r := range ranges {
		if r.From().Is4() {
			n += 40
		} else {
			n += 64
		}
	}
	return n + n/100
}
