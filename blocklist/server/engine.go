package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/wire"
	"github.com/rampart-sec/rampart/blocklist/store"
	"go4.org/netipx"
)

// maxLogOps bounds the in-memory change log of the published set; an agent
// further behind gets a full snapshot.
const maxLogOps = 500_000

type decKey struct {
	prefix netip.Prefix
	source string
}

type logEntry struct {
	version     uint64
	add, remove []netip.Prefix
}

// engine folds the store's change log into the published set: the
// decisions' prefixes, with prefixes covered by a wider decision left out
// and the allowlist subtracted, so the set never overlaps itself.
//
// Version is one more than the store sequence of the last change that
// altered the published set, so replicas reading the same log number the
// set identically and version 0 never names a set.
type engine struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time

	catchMu sync.Mutex // one catch-up at a time

	mu         sync.RWMutex
	seq        uint64
	version    uint64
	decisions  map[decKey]store.Decision
	decIdx     *prefixIndex
	allow      map[netip.Prefix]store.Allow
	allowIdx   *prefixIndex
	offenders  map[netip.Prefix]store.Offender
	published  *prefixIndex
	bySource   map[string]int
	nextExpiry time.Time
	entries    []logEntry
	logBase    uint64 // entries describe the changes from logBase on
	logOps     int
	changed    chan struct{} // closed when version moves

	cacheMu sync.Mutex
	cache   map[uint64]*encoded // keyed by the agent's version; full snapshot under 0
	cacheV  uint64
}

type encoded struct {
	once    sync.Once
	data    []byte
	version uint64
	full    bool
}

func newEngine(st store.Store, log *slog.Logger, now func() time.Time) *engine {
	return &engine{
		st: st, log: log, now: now,
		decisions: map[decKey]store.Decision{}, decIdx: newPrefixIndex(),
		allow: map[netip.Prefix]store.Allow{}, allowIdx: newPrefixIndex(),
		offenders: map[netip.Prefix]store.Offender{}, published: newPrefixIndex(),
		bySource: map[string]int{},
		changed:  make(chan struct{}),
		cache:    map[uint64]*encoded{},
	}
}

// load replaces the in-memory state with the store's, publishing the
// difference as one change.
func (e *engine) load(ctx context.Context) error {
	st, err := e.st.Load(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.published
	e.decisions = make(map[decKey]store.Decision, len(st.Decisions))
	e.decIdx = newPrefixIndex()
	e.allow = map[netip.Prefix]store.Allow{}
	e.allowIdx = newPrefixIndex()
	e.offenders = map[netip.Prefix]store.Offender{}
	e.bySource = map[string]int{}
	e.nextExpiry = time.Time{}
	for _, d := range st.Decisions {
		e.putDecision(d)
	}
	for _, a := range st.Allow {
		e.allow[a.Prefix] = a
		e.allowIdx.add(a.Prefix)
	}
	for _, o := range st.Offenders {
		e.offenders[o.Prefix] = o
	}
	e.published = newPrefixIndex()
	for p := range e.decIdx.all() {
		for _, piece := range e.pieces(p) {
			e.published.add(piece)
		}
	}
	e.seq = st.Seq
	var add, remove []netip.Prefix
	for p := range e.published.all() {
		if !old.has(p) {
			add = append(add, p)
		}
	}
	for p := range old.all() {
		if !e.published.has(p) {
			remove = append(remove, p)
		}
	}
	// A reload is a jump: agents that knew the old set get a full snapshot.
	e.entries, e.logOps = nil, 0
	e.logBase = st.Seq + 1
	e.setVersion(st.Seq + 1)
	e.log.Info("blocklistd: state loaded", "seq", st.Seq, "decisions", len(e.decisions),
		"allow", len(e.allow), "published", e.published.len(), "added", len(add), "removed", len(remove))
	return nil
}

func (e *engine) setVersion(v uint64) {
	if v == e.version {
		return
	}
	e.version = v
	close(e.changed)
	e.changed = make(chan struct{})
}

// catchUp applies every change the store has after e.seq.
func (e *engine) catchUp(ctx context.Context) error {
	e.catchMu.Lock()
	defer e.catchMu.Unlock()
	for {
		e.mu.RLock()
		after := e.seq
		e.mu.RUnlock()
		chs, err := e.st.Changes(ctx, after, 50)
		if errors.Is(err, store.ErrCompacted) {
			e.log.Warn("blocklistd: change log compacted past our position; reloading", "seq", after)
			return e.load(ctx)
		}
		if err != nil {
			return err
		}
		if len(chs) == 0 {
			return nil
		}
		e.mu.Lock()
		for _, ch := range chs {
			e.applyChange(ch)
		}
		e.mu.Unlock()
	}
}

// apply writes muts to the store and waits until they are published here.
func (e *engine) apply(ctx context.Context, muts []store.Mutation) (store.Change, error) {
	if len(muts) == 0 {
		return store.Change{}, nil
	}
	ch, err := e.st.Apply(ctx, muts)
	if err != nil {
		return ch, err
	}
	return ch, e.catchUp(ctx)
}

func (e *engine) putDecision(d store.Decision) {
	k := decKey{d.Prefix, d.Source}
	if _, ok := e.decisions[k]; !ok {
		e.decIdx.add(d.Prefix)
		e.bySource[sourceLabel(d.Source)]++
	}
	e.decisions[k] = d
	if !d.Expires.IsZero() && (e.nextExpiry.IsZero() || d.Expires.Before(e.nextExpiry)) {
		e.nextExpiry = d.Expires
	}
}

func (e *engine) deleteDecision(p netip.Prefix, source string) {
	k := decKey{p, source}
	if _, ok := e.decisions[k]; !ok {
		return
	}
	delete(e.decisions, k)
	e.decIdx.remove(p)
	e.bySource[sourceLabel(source)]--
}

// region is the part of the address space whose published pieces may
// change when something at p changes: the widest decision containing p, or
// p itself.
func (e *engine) region(p netip.Prefix) netip.Prefix {
	if top, ok := e.decIdx.topAncestor(p); ok {
		return top
	}
	return p
}

func (e *engine) applyChange(ch store.Change) {
	if ch.Seq <= e.seq {
		return
	}
	e.seq = ch.Seq
	var regions []netip.Prefix
	touch := func(p netip.Prefix) { regions = append(regions, e.region(p)) }
	for _, m := range ch.Mutations {
		switch m.Op {
		case store.PutDecision:
			touch(m.Decision.Prefix)
		case store.DeleteDecision, store.DeleteAllow:
			touch(m.Prefix)
		case store.PutAllow:
			touch(m.Allow.Prefix)
		}
	}
	for _, m := range ch.Mutations {
		switch m.Op {
		case store.PutDecision:
			e.putDecision(*m.Decision)
		case store.DeleteDecision:
			e.deleteDecision(m.Prefix, m.Source)
		case store.PutAllow:
			if _, ok := e.allow[m.Allow.Prefix]; !ok {
				e.allowIdx.add(m.Allow.Prefix)
			}
			e.allow[m.Allow.Prefix] = *m.Allow
		case store.DeleteAllow:
			if _, ok := e.allow[m.Prefix]; ok {
				delete(e.allow, m.Prefix)
				e.allowIdx.remove(m.Prefix)
			}
		case store.PutOffender:
			e.offenders[m.Offender.Prefix] = *m.Offender
		}
	}
	for _, m := range ch.Mutations {
		switch m.Op {
		case store.PutDecision:
			touch(m.Decision.Prefix)
		case store.DeleteDecision, store.DeleteAllow:
			touch(m.Prefix)
		case store.PutAllow:
			touch(m.Allow.Prefix)
		}
	}
	regions = outermost(regions)
	var add, remove []netip.Prefix
	var oldPieces, newPieces []netip.Prefix
	for _, r := range regions {
		oldPieces, newPieces = oldPieces[:0], newPieces[:0]
		e.published.within(r, func(p netip.Prefix) { oldPieces = append(oldPieces, p) })
		e.decIdx.within(r, func(p netip.Prefix) { newPieces = append(newPieces, e.pieces(p)...) })
		switch {
		case len(oldPieces) == 0:
			add = append(add, newPieces...)
			continue
		case len(newPieces) == 0:
			remove = append(remove, oldPieces...)
			continue
		case len(oldPieces) == 1 && len(newPieces) == 1 && oldPieces[0] == newPieces[0]:
			continue
		}
		old := make(map[netip.Prefix]bool, len(oldPieces))
		for _, p := range oldPieces {
			old[p] = true
		}
		for _, p := range newPieces {
			if old[p] {
				delete(old, p)
			} else {
				add = append(add, p)
			}
		}
		for p := range old {
			remove = append(remove, p)
		}
	}
	if len(add)+len(remove) == 0 {
		return
	}
	for _, p := range remove {
		e.published.remove(p)
	}
	for _, p := range add {
		e.published.add(p)
	}
	v := ch.Seq + 1
	e.entries = append(e.entries, logEntry{version: v, add: add, remove: remove})
	e.logOps += len(add) + len(remove)
	for e.logOps > maxLogOps && len(e.entries) > 0 {
		e.logOps -= len(e.entries[0].add) + len(e.entries[0].remove)
		e.logBase = e.entries[0].version
		e.entries = e.entries[1:]
	}
	e.setVersion(v)
}

// outermost drops regions contained in another region.
func outermost(rs []netip.Prefix) []netip.Prefix {
	slices.SortFunc(rs, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
	kept := newPrefixIndex()
	out := rs[:0]
	for _, r := range rs {
		if _, covered := kept.topAncestor(r); covered {
			continue
		}
		kept.add(r)
		out = append(out, r)
	}
	return out
}

// pieces is what decision prefix p contributes to the published set:
// nothing when a wider decision or an allow entry covers it, p minus the
// allow entries inside it otherwise.
func (e *engine) pieces(p netip.Prefix) []netip.Prefix {
	if e.decIdx.hasStrictAncestor(p) {
		return nil
	}
	if _, ok := e.allowIdx.topAncestor(p); ok {
		return nil
	}
	var inside []netip.Prefix
	e.allowIdx.within(p, func(a netip.Prefix) { inside = append(inside, a) })
	if len(inside) == 0 {
		return []netip.Prefix{p}
	}
	var b netipx.IPSetBuilder
	b.AddPrefix(p)
	for _, a := range inside {
		b.RemovePrefix(a)
	}
	set, _ := b.IPSet()
	return set.Prefixes()
}

// allowed reports whether the allowlist covers p.
func (e *engine) allowed(p netip.Prefix) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	_, ok := e.allowIdx.topAncestor(p)
	return ok
}

// currentVersion returns the version and a channel closed when it moves.
func (e *engine) currentVersion() (uint64, <-chan struct{}) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.version, e.changed
}

// updateFor returns the encoded answer for an agent at have, or nil when
// have is current. Answers are cached per version, so a change reaching
// thousands of waiting agents is encoded once.
func (e *engine) updateFor(have uint64) (data []byte, version uint64, full bool) {
	e.mu.RLock()
	version = e.version
	e.mu.RUnlock()
	if have == version {
		return nil, version, false
	}
	e.cacheMu.Lock()
	if e.cacheV != version {
		e.cache = map[uint64]*encoded{}
		e.cacheV = version
	}
	key := have
	if have > version || have < e.logBaseLocked() {
		key = 0
	}
	enc := e.cache[key]
	if enc == nil {
		enc = &encoded{}
		e.cache[key] = enc
	}
	e.cacheMu.Unlock()
	enc.once.Do(func() { enc.data, enc.version, enc.full = e.encode(key) })
	return enc.data, enc.version, enc.full
}

func (e *engine) logBaseLocked() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.logBase
}

// encode builds the answer for an agent at have (0: full) reaching the
// current version.
func (e *engine) encode(have uint64) ([]byte, uint64, bool) {
	e.mu.RLock()
	version := e.version
	if have != 0 && have >= e.logBase && have < version {
		add, remove := e.deltaLocked(have)
		if len(add)+len(remove) <= e.published.len()/2+16 {
			u := wire.Update{Version: version, Add: add, Remove: remove}
			e.mu.RUnlock()
			return encodeBytes(u), version, false
		}
	}
	entries := make([]netip.Prefix, 0, e.published.len())
	for p := range e.published.all() {
		entries = append(entries, p)
	}
	u := wire.Update{Version: version, Full: true, Entries: entries}
	e.mu.RUnlock()
	return encodeBytes(u), version, true
}

func encodeBytes(u wire.Update) []byte {
	var b bytes.Buffer
	if err := wire.Encode(&b, u, gzip.BestSpeed); err != nil {
		// Only unmasked prefixes fail, and the engine only publishes masked ones.
		panic(fmt.Sprintf("blocklistd: encode update: %v", err))
	}
	return b.Bytes()
}

// deltaLocked folds the log entries after have into net additions and
// removals: the published entries at have minus remove, plus add, are
// the published entries now (the meaning of a delta, see the wire
// package). No prefix is in both lists, and since published entries never
// overlap, the same change read as addresses (firewall.Delta: removals,
// then additions) gives the same set.
func (e *engine) deltaLocked(have uint64) (add, remove []netip.Prefix) {
	i, _ := slices.BinarySearchFunc(e.entries, have+1, func(l logEntry, v uint64) int {
		switch {
		case l.version < v:
			return -1
		case l.version > v:
			return 1
		}
		return 0
	})
	type fold struct{ firstAdd, lastAdd bool }
	net := map[netip.Prefix]*fold{}
	mark := func(p netip.Prefix, isAdd bool) {
		f := net[p]
		if f == nil {
			f = &fold{firstAdd: isAdd}
			net[p] = f
		}
		f.lastAdd = isAdd
	}
	for _, l := range e.entries[i:] {
		for _, p := range l.remove {
			mark(p, false)
		}
		for _, p := range l.add {
			mark(p, true)
		}
	}
	for p, f := range net {
		switch {
		case f.firstAdd && f.lastAdd:
			add = append(add, p)
		case !f.firstAdd && !f.lastAdd:
			remove = append(remove, p)
		}
	}
	return add, remove
}

// expire deletes decisions whose time has come.
func (e *engine) expire(ctx context.Context) error {
	now := e.now()
	e.mu.RLock()
	if e.nextExpiry.IsZero() || e.nextExpiry.After(now) {
		e.mu.RUnlock()
		return nil
	}
	var muts []store.Mutation
	var next time.Time
	for _, d := range e.decisions {
		if d.Expires.IsZero() {
			continue
		}
		if !d.Expires.After(now) {
			muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: d.Prefix, Source: d.Source, IfExpiredBy: now})
		} else if next.IsZero() || d.Expires.Before(next) {
			next = d.Expires
		}
	}
	e.mu.RUnlock()
	for len(muts) > 0 {
		n := min(len(muts), 5000)
		if _, err := e.apply(ctx, muts[:n]); err != nil {
			return fmt.Errorf("expire decisions: %w", err)
		}
		muts = muts[n:]
	}
	e.mu.Lock()
	if e.nextExpiry.IsZero() || !e.nextExpiry.After(now) || (!next.IsZero() && next.Before(e.nextExpiry)) {
		e.nextExpiry = next
	}
	e.mu.Unlock()
	return nil
}

// snapshotDecisions returns a copy of every decision and allow entry.
func (e *engine) snapshotDecisions() (uint64, []store.Decision, []store.Allow) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ds := make([]store.Decision, 0, len(e.decisions))
	for _, d := range e.decisions {
		ds = append(ds, d)
	}
	as := make([]store.Allow, 0, len(e.allow))
	for _, a := range e.allow {
		as = append(as, a)
	}
	return e.version, ds, as
}

// sourceLabel turns "feed:spamhaus" into the metric label "feed:spamhaus"
// and keeps manual and report as they are.
func sourceLabel(s string) string { return s }
