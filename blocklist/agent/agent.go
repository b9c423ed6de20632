package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/firewall"
)

// Syncer is the part of [client.Client] the agent needs: a long-poll for
// the set at a newer version than have.
type Syncer interface {
	Sync(ctx context.Context, have uint64, wait time.Duration) (client.Update, error)
}

var _ Syncer = (*client.Client)(nil)

// Options are an Agent's dependencies and settings. Backend, Server and
// StateDir are required.
type Options struct {
	Backend firewall.Backend
	Server  Syncer
	// ServerName is shown in the status (the blocklistd URL).
	ServerName string
	// BackendName and Table are shown in the status: which firewall
	// ("nftables", "pf") enforces the set, in which table.
	BackendName, Table string
	// Policy is applied to every set before the backend sees it.
	Policy firewall.Policy
	// StateDir holds the snapshot, the status file and the socket.
	StateDir string
	// Wait is how long one long-poll may last (default 60s).
	Wait time.Duration
	// Backoff bounds the delay between failed attempts (default 1s to 60s).
	Backoff Backoff
	// MaxEntries bounds the snapshot the agent accepts from disk (0: the
	// wire format's default).
	MaxEntries int
	Logger     *slog.Logger
	// Registry receives the agent's metrics; nil registers none.
	Registry prometheus.Registerer
	// Clock defaults to the system clock.
	Clock Clock
	// NoSocket disables the status socket (tests that run many agents).
	NoSocket bool
	// HostAddrsInterval is how often the host's own addresses
	// (Policy.HostAddrs, else every interface's) are read again (default
	// 30s; negative: only when a change arrives). When they differ from
	// the ones the enforced set was built with, the whole set is replaced:
	// an address the host gained is unblocked, one it lost is enforced
	// again, without waiting for blocklistd to send a full snapshot.
	HostAddrsInterval time.Duration
}

// DefaultHostAddrsInterval is Options.HostAddrsInterval when unset.
const DefaultHostAddrsInterval = 30 * time.Second

// Agent follows blocklistd and enforces its decisions on this host.
type Agent struct {
	o       Options
	log     *slog.Logger
	clock   Clock
	metrics *agentMetrics

	// fw serializes what touches the firewall, entries, dirty and
	// hostAddrs: the follow loop and the host-address watcher.
	fw sync.Mutex
	// entries is the server set at version; only the Run goroutine
	// writes it (under fw).
	entries []netip.Prefix
	// hostAddrs are this host's addresses (sorted, unique) the enforced
	// set was last fully built with; hostKnown is false until this
	// process replaced the set once.
	hostAddrs []netip.Addr
	hostKnown bool
	version   uint64
	// dirty means the backend may not hold entries (a failed apply): the
	// next change must be a full Replace.
	dirty bool
	// unrestored is the saved snapshot the firewall refused at start,
	// retried while blocklistd is unreachable; nil once enforced or
	// superseded by blocklistd's set.
	unrestored *Snapshot

	mu     sync.Mutex
	status Status

	// pending is the snapshot waiting to be written by persistLoop, so
	// that disk writes never delay the next long-poll.
	pmu     sync.Mutex
	pending *Snapshot
	wake    chan struct{}
}

// New checks o and returns an Agent; it touches neither the firewall nor
// the network.
func New(o Options) (*Agent, error) {
	if o.Backend == nil || o.Server == nil {
		return nil, errors.New("blocklist agent: a firewall backend and a blocklistd client are required")
	}
	if o.StateDir == "" {
		return nil, errors.New("blocklist agent: state_dir is required")
	}
	if o.Wait <= 0 {
		o.Wait = 60 * time.Second
	}
	if o.Backoff.Min <= 0 {
		o.Backoff.Min = time.Second
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.HostAddrsInterval == 0 {
		o.HostAddrsInterval = DefaultHostAddrsInterval
	}
	a := &Agent{o: o, log: o.Logger, clock: o.Clock, wake: make(chan struct{}, 1)}
	now := o.Clock.Now()
	a.status = Status{PID: os.Getpid(), Started: now, Updated: now, Server: o.ServerName,
		Backend: o.BackendName, Table: o.Table}
	m, err := newMetrics(o.Registry, a.lag, a.refused)
	if err != nil {
		return nil, fmt.Errorf("blocklist agent: metrics: %w", err)
	}
	a.metrics = m
	return a, nil
}

func (a *Agent) lag() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	since := a.status.LastSync
	if since.IsZero() {
		since = a.status.Started
	}
	return a.clock.Now().Sub(since).Seconds()
}

// refused is the number of entries the policy refuses now (the
// rampart_blocklist_agent_refused_entries gauge).
func (a *Agent) refused() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return float64(a.status.Refused)
}

// Status returns a copy of the current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Run enforces the persisted snapshot, then follows blocklistd until ctx
// ends. It returns an error only when it cannot start (state directory,
// socket); losing blocklistd or a firewall that refuses a change is never
// an error (both are retried), and Run never empties the firewall.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.o.StateDir, 0o700); err != nil {
		return fmt.Errorf("blocklist agent: state_dir: %w", err)
	}
	if !a.o.NoSocket {
		if err := serveStatus(ctx, a.o.StateDir, a.log, a.Status); err != nil {
			return fmt.Errorf("blocklist agent: %w", err)
		}
	}
	a.restore(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go a.persistLoop(stop, done)
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		a.watchHostAddrs(wctx)
	}()
	a.follow(ctx)
	wcancel()
	<-wdone
	close(stop)
	<-done
	return nil
}

// persistLoop writes snapshots and the status file in the background,
// the latest one winning, and flushes what is left when stop closes.
func (a *Agent) persistLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-a.wake:
			a.persistNow()
		case <-stop:
			a.persistNow()
			return
		}
	}
}

func (a *Agent) persistNow() {
	a.pmu.Lock()
	snap := a.pending
	a.pending = nil
	a.pmu.Unlock()
	if snap != nil {
		// The firewall already enforces it; a snapshot that cannot be
		// written costs only a slower start, so it is logged, not retried.
		if err := SaveSnapshot(filepath.Join(a.o.StateDir, SnapshotFile), *snap); err != nil {
			a.log.Error("cannot persist the snapshot; a restart without blocklistd would enforce an older one", "err", err)
		}
	}
	a.writeStatus()
}

// persist schedules a snapshot (nil: only the status file) for writing.
func (a *Agent) persist(snap *Snapshot) {
	if snap != nil {
		a.pmu.Lock()
		a.pending = snap
		a.pmu.Unlock()
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// restore enforces the snapshot saved by a previous run. A firewall that
// refuses it (pfctl failing at boot, say) is not a reason to exit: on
// OpenBSD nothing would restart the agent and the host would enforce
// nothing. The snapshot is kept and retried while blocklistd is
// unreachable; a set from blocklistd supersedes it.
func (a *Agent) restore(ctx context.Context) {
	path := filepath.Join(a.o.StateDir, SnapshotFile)
	snap, err := LoadSnapshot(path, a.o.MaxEntries)
	switch {
	case errors.Is(err, ErrNoSnapshot):
		a.log.Info("no saved snapshot; the firewall is left as it is until blocklistd answers", "path", path)
		return
	case err != nil:
		// A damaged snapshot is not a reason to stay down: blocklistd
		// will send a full one. The firewall keeps what it has meanwhile.
		a.log.Error("saved snapshot unreadable; waiting for a full snapshot from blocklistd", "err", err)
		return
	}
	snap.Entries = sortedUnique(snap.Entries)
	if err := a.enforceSaved(ctx, snap); err != nil {
		a.unrestored = &snap
		a.log.Error("the firewall refused the saved snapshot; retrying until it or blocklistd's set is enforced", "err", err)
		a.update(func(s *Status) {
			s.Failures++
			s.LastError = err.Error()
			s.ErrorAt = a.clock.Now()
		})
	}
}

// enforceSaved makes the firewall enforce a saved snapshot and adopts its
// version.
func (a *Agent) enforceSaved(ctx context.Context, snap Snapshot) error {
	a.fw.Lock()
	defer a.fw.Unlock()
	path := filepath.Join(a.o.StateDir, SnapshotFile)
	if err := a.replace(ctx, snap.Entries); err != nil {
		return &applyError{fmt.Errorf("enforce saved snapshot %s (version %d): %w", path, snap.Version, err)}
	}
	a.unrestored = nil
	a.entries, a.version = snap.Entries, snap.Version
	v4, v6 := countFamilies(snap.Entries)
	a.setGauges(snap.Version, v4, v6)
	a.update(func(s *Status) {
		s.Restored = true
		s.Version, s.Entries, s.IPv4, s.IPv6 = snap.Version, len(snap.Entries), v4, v6
	})
	a.log.Info("enforcing saved snapshot", "version", snap.Version, "entries", len(snap.Entries))
	return nil
}

// follow is the long-poll loop.
func (a *Agent) follow(ctx context.Context) {
	bo := a.o.Backoff
	// The first request after a start or a failure does not wait: it
	// tells at once whether blocklistd is back and what changed meanwhile.
	probe := true
	for ctx.Err() == nil {
		wait := a.o.Wait
		if probe {
			wait = 0
		}
		start := a.clock.Now()
		u, err := a.o.Server.Sync(ctx, a.version, wait)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if u.Full {
				a.log.Debug("full snapshot received", "entries", len(u.Entries), "took", a.clock.Now().Sub(start).Round(time.Millisecond))
			}
			a.contact()
			err = a.handle(ctx, u)
			if err == nil {
				probe = false
				bo.Reset()
				a.persist(nil)
				continue
			}
		}
		probe = true
		if a.unrestored != nil && isUnreachable(err) {
			if rerr := a.enforceSaved(ctx, *a.unrestored); rerr != nil {
				a.log.Error("the firewall still refuses the saved snapshot", "err", rerr)
				err = fmt.Errorf("%w; %v", err, rerr) // still unreachable: only the text of rerr
			}
		}
		a.failed(err, bo.Failures()+1)
		delay := bo.Next()
		a.log.Warn("blocklistd sync failed; still enforcing the last good set", "err", err, "retry_in", delay.Round(time.Millisecond), "version", a.version)
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(delay):
		}
	}
}

func (a *Agent) contact() {
	now := a.clock.Now()
	a.metrics.reachable.Set(1)
	a.metrics.lastSync.Set(float64(now.UnixNano()) / 1e9)
	a.update(func(s *Status) {
		s.LastSync = now
		s.Restored = false
		s.Reachable = true
		s.Failures = 0
	})
}

func (a *Agent) failed(err error, failures int) {
	now := a.clock.Now()
	reached := !isUnreachable(err)
	a.metrics.syncErrors.Inc()
	if !reached {
		a.metrics.reachable.Set(0)
	}
	a.update(func(s *Status) {
		s.Reachable = reached
		s.Failures = failures
		s.LastError = err.Error()
		s.ErrorAt = now
	})
	a.persist(nil)
}

// isUnreachable tells a server that did not answer from a firewall that
// refused a change.
func isUnreachable(err error) bool {
	var fe *applyError
	return !errors.As(err, &fe)
}

type applyError struct{ err error }

func (e *applyError) Error() string { return "firewall: " + e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// handle enforces one answer from blocklistd, then persists it.
func (a *Agent) handle(ctx context.Context, u client.Update) error {
	a.fw.Lock()
	defer a.fw.Unlock()
	var next []netip.Prefix
	start := time.Now()
	switch {
	case u.Full:
		next = sortedUnique(u.Entries)
		if err := a.replace(ctx, next); err != nil {
			return &applyError{err}
		}
	case u.Version == a.version && len(u.Add) == 0 && len(u.Remove) == 0:
		return nil // the long-poll ended without a change
	default:
		next = applyDelta(a.entries, u.Add, u.Remove)
		if err := a.apply(ctx, a.entries, next, u.Add, u.Remove); err != nil {
			return &applyError{err}
		}
	}
	prev := a.version
	a.entries, a.version = next, u.Version
	a.unrestored = nil
	v4, v6 := countFamilies(next)
	a.setGauges(u.Version, v4, v6)
	now := a.clock.Now()
	a.update(func(s *Status) {
		s.Version, s.Entries, s.IPv4, s.IPv6 = u.Version, len(next), v4, v6
		s.Restored = false
		s.LastChange = now
	})
	a.log.Info("blocklist updated", "from", prev, "version", u.Version, "full", u.Full,
		"add", len(u.Add), "remove", len(u.Remove), "entries", len(next), "enforce_took", time.Since(start).Round(time.Millisecond))
	a.persist(&Snapshot{Version: u.Version, Entries: next})
	return nil
}

// replace makes the firewall enforce exactly entries (after the policy),
// built with the host's addresses as they are now.
func (a *Agent) replace(ctx context.Context, entries []netip.Prefix) error {
	addrs, err := a.readHostAddrs()
	if err != nil {
		return err
	}
	set, st, err := a.policyWith(addrs).BuildSet(slices.Values(entries))
	if err != nil {
		return err
	}
	start := time.Now()
	if err := firewall.Replace(ctx, a.o.Backend, set); err != nil {
		a.dirty = true
		return fmt.Errorf("replace %d entries: %w", len(entries), err)
	}
	a.metrics.applyDuration.WithLabelValues("replace").Observe(time.Since(start).Seconds())
	a.dirty = false
	a.hostAddrs, a.hostKnown = addrs, true
	a.update(func(s *Status) { s.Refused, s.Allowlisted = st.Refused, st.Allowlisted })
	if st.Refused > 0 {
		a.logRefused(st.Refused, entries)
	}
	return nil
}

// logRefused says loudly that entries are not enforced: a prefix broader
// than this agent accepts is dropped whole, and blocklistd publishes only
// the widest of nested decisions, so the narrower bans inside it are not
// enforced either. entries are searched for a few examples.
func (a *Agent) logRefused(n int, entries []netip.Prefix) {
	var examples []string
	for _, p := range entries {
		if err := a.o.Policy.Check(p); err != nil {
			examples = append(examples, err.Error())
			if len(examples) == 5 {
				break
			}
		}
	}
	a.log.Error("entries refused by this agent's policy are NOT enforced, nor any narrower ban blocklistd folded into them; "+
		"set firewall.allow_broad: true on the agents or narrow blocklistd's policy.min_prefix_v4/v6",
		"refused", n, "examples", examples)
}

// readHostAddrs returns this host's addresses (Policy.HostAddrs, else
// every interface's), unmapped, without zones, sorted and unique.
func (a *Agent) readHostAddrs() ([]netip.Addr, error) {
	src := a.o.Policy.HostAddrs
	if src == nil {
		src = firewall.InterfaceAddrs
	}
	addrs, err := src()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses for the allowlist: %w", err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, ad := range addrs {
		out = append(out, ad.Unmap().WithZone(""))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// policyWith is the agent's policy with the host's addresses fixed to
// addrs, so that what is recorded is what the set was built with.
func (a *Agent) policyWith(addrs []netip.Addr) firewall.Policy {
	p := a.o.Policy
	p.HostAddrs = func() ([]netip.Addr, error) { return addrs, nil }
	return p
}

// watchHostAddrs re-reads the host's addresses every HostAddrsInterval
// until ctx ends.
func (a *Agent) watchHostAddrs(ctx context.Context) {
	if a.o.HostAddrsInterval < 0 {
		return
	}
	t := time.NewTicker(a.o.HostAddrsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.recheckHostAddrs(ctx)
		}
	}
}

// recheckHostAddrs replaces the whole set when the host's addresses
// differ from those the enforced set was built with (a delta only
// filters what it adds), and reports whether it did. Before this process
// enforced anything it does nothing: the agent never loads a set it has
// not received or restored.
func (a *Agent) recheckHostAddrs(ctx context.Context) bool {
	a.fw.Lock()
	defer a.fw.Unlock()
	if !a.hostKnown {
		return false
	}
	addrs, err := a.readHostAddrs()
	if err != nil {
		a.log.Warn("cannot re-read this host's addresses; the set keeps the ones it was built with", "err", err)
		return false
	}
	if slices.Equal(addrs, a.hostAddrs) {
		return false
	}
	gained, lost := addrDiff(a.hostAddrs, addrs)
	a.log.Info("this host's addresses changed; replacing the whole set so that they are never blocked and the ones it lost are enforced",
		"gained", gained, "lost", lost, "entries", len(a.entries))
	a.metrics.hostAddrChanges.Inc()
	if err := a.replace(ctx, a.entries); err != nil {
		// dirty is set: the next change from blocklistd is a full
		// replace, and the next check tries again.
		a.log.Error("the firewall refused the set rebuilt for the host's new addresses", "err", err)
		a.update(func(s *Status) {
			s.LastError = "firewall: " + err.Error()
			s.ErrorAt = a.clock.Now()
		})
		return false
	}
	a.update(func(s *Status) { s.LastChange = a.clock.Now() })
	return true
}

// addrDiff returns the addresses of next missing from prev (gained) and
// those of prev missing from next (lost); both are sorted and unique.
func addrDiff(prev, next []netip.Addr) (gained, lost []netip.Addr) {
	for _, ad := range next {
		if _, ok := slices.BinarySearchFunc(prev, ad, netip.Addr.Compare); !ok {
			gained = append(gained, ad)
		}
	}
	for _, ad := range prev {
		if _, ok := slices.BinarySearchFunc(next, ad, netip.Addr.Compare); !ok {
			lost = append(lost, ad)
		}
	}
	return gained, lost
}

// apply pushes the change from cur to next (add and remove, as
// blocklistd sent them) as a delta, or the whole next set when the
// firewall may not hold the current one or refuses the delta.
func (a *Agent) apply(ctx context.Context, cur, next, add, remove []netip.Prefix) error {
	if a.dirty {
		return a.replace(ctx, next)
	}
	// A delta filters only what it adds through the host's addresses: when
	// they changed since the set was built, the whole set is rebuilt.
	addrs, err := a.readHostAddrs()
	if err != nil {
		return err
	}
	if !a.hostKnown || !slices.Equal(addrs, a.hostAddrs) {
		if a.hostKnown {
			gained, lost := addrDiff(a.hostAddrs, addrs)
			a.log.Info("this host's addresses changed; replacing the whole set instead of applying the delta", "gained", gained, "lost", lost)
			a.metrics.hostAddrChanges.Inc()
		}
		return a.replace(ctx, next)
	}
	pol := a.policyWith(addrs)
	pd, st, err := pol.BuildDelta(firewallDelta(next, add, remove))
	if err != nil {
		return err
	}
	// The status counts what a full replace of next would: entries that
	// came and went, not the ones re-added around a removal.
	came, went := changedEntries(cur, next, add, remove)
	var stCame, stWent firewall.Stats
	if len(came) > 0 {
		if _, stCame, err = pol.Build(came); err != nil {
			return err
		}
	}
	if len(went) > 0 {
		if _, stWent, err = pol.Build(went); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := a.o.Backend.Apply(ctx, pd); err != nil {
		a.log.Warn("firewall refused a delta; replacing the whole set", "err", err)
		return a.replace(ctx, next)
	}
	a.metrics.applyDuration.WithLabelValues("apply").Observe(time.Since(start).Seconds())
	a.update(func(s *Status) {
		s.Allowlisted += stCame.Allowlisted - stWent.Allowlisted
		s.Refused += stCame.Refused - stWent.Refused
	})
	if st.Refused > 0 {
		a.logRefused(st.Refused, add)
	}
	return nil
}

func (a *Agent) setGauges(version uint64, v4, v6 int) {
	a.metrics.version.Set(float64(version))
	a.metrics.entries.WithLabelValues("ipv4").Set(float64(v4))
	a.metrics.entries.WithLabelValues("ipv6").Set(float64(v6))
}

func (a *Agent) update(f func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.status)
	a.status.Updated = a.clock.Now()
}

func (a *Agent) writeStatus() {
	if err := WriteStatus(a.o.StateDir, a.Status()); err != nil {
		a.log.Warn("cannot write the status file", "err", err)
	}
}
