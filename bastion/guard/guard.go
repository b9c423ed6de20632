// Package guard is the bastion's brute-force defence: it counts failed
// logins per source address and per user over a sliding window, slows each
// further failure down (exponential backoff), locks a source or a user out
// for a while past a threshold, and reports persistent sources to
// blocklistd through a [Reporter] so every host drops them.
//
// Success never resets a source's count (an attacker can own one account),
// only the user's.
//
// Which failures count against whom is the caller's choice, and it decides
// who can lock whom out: the bastion counts a wrong key against the source
// only, and a wrong second factor after the user's own valid key against
// the user too, so a stranger who knows a user name cannot lock that user
// out. Every lock and every unlock is reported through [Options.OnLock].
package guard

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Reporter tells blocklistd about an abusive source. Implementations must
// be safe for concurrent use and honour ctx.
type Reporter interface {
	Report(ctx context.Context, addr netip.Addr, reason string, count int, window time.Duration) error
}

// Config holds the thresholds. Zero values take the documented defaults.
type Config struct {
	Window          time.Duration // failures older than this are forgotten (10m)
	SourceThreshold int           // failures from one source before lockout (10)
	UserThreshold   int           // failures against one user before lockout (5)
	Lockout         time.Duration // how long a lockout lasts (15m)
	ReportThreshold int           // failures from one source before reporting it (20; 0 = default, <0 = never)
	BackoffBase     time.Duration // delay added to the first failure (500ms)
	BackoffMax      time.Duration // delay cap (8s)
	MaxTracked      int           // entries kept before the oldest are dropped (100000)
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.SourceThreshold <= 0 {
		c.SourceThreshold = 10
	}
	if c.UserThreshold <= 0 {
		c.UserThreshold = 5
	}
	if c.Lockout <= 0 {
		c.Lockout = 15 * time.Minute
	}
	if c.ReportThreshold == 0 {
		c.ReportThreshold = 20
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 500 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 8 * time.Second
	}
	if c.MaxTracked <= 0 {
		c.MaxTracked = 100000
	}
}

type entry struct {
	fails       []time.Time
	lockedUntil time.Time
	reportedAt  time.Time
	announced   bool // a lock was reported through OnLock, its unlock not yet
}

// prune drops failures outside the window and reports whether the entry
// holds anything worth keeping.
func (e *entry) prune(now time.Time, window time.Duration) bool {
	i := 0
	for i < len(e.fails) && now.Sub(e.fails[i]) > window {
		i++
	}
	e.fails = e.fails[i:]
	return len(e.fails) > 0 || now.Before(e.lockedUntil) || e.announced
}

// Event is one lock or unlock, for the audit log and metrics.
type Event struct {
	Kind     string     // KindSource or KindUser
	Source   netip.Addr // Kind source
	User     string     // Kind user
	Locked   bool       // true: locked; false: the lockout ended
	Until    time.Time  // when the lockout ends (Locked)
	Failures int        // failures in the window when locked
}

// Lockout kinds.
const (
	KindSource = "source"
	KindUser   = "user"
)

// Lock is an active lockout.
type Lock struct {
	Kind  string // KindSource or KindUser
	Until time.Time
}

// Guard is safe for concurrent use.
type Guard struct {
	cfg      Config
	reporter Reporter
	logger   *slog.Logger
	now      func() time.Time
	onReport func(addr netip.Addr, err error)
	onLock   func(Event)

	mu      sync.Mutex
	sources map[netip.Addr]*entry
	users   map[string]*entry
}

// Options are the Guard's dependencies; all optional.
type Options struct {
	Reporter Reporter
	Logger   *slog.Logger
	Now      func() time.Time
	// OnReport is called after each report attempt (audit, metrics).
	OnReport func(addr netip.Addr, err error)
	// OnLock is called for every lock and every unlock, outside the
	// Guard's lock and in order for one key. An unlock is noticed by the
	// next call that looks at the key, or by [Guard.Sweep].
	OnLock func(Event)
}

// New returns a Guard.
func New(cfg Config, opts Options) *Guard {
	cfg.defaults()
	g := &Guard{cfg: cfg, reporter: opts.Reporter, logger: opts.Logger, now: opts.Now, onReport: opts.OnReport, onLock: opts.OnLock,
		sources: map[netip.Addr]*entry{}, users: map[string]*entry{}}
	if g.now == nil {
		g.now = time.Now
	}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	return g
}

// Config returns the effective thresholds.
func (g *Guard) Config() Config { return g.cfg }

// Locked reports whether src or user (empty: not checked) is locked out,
// and which one, in words for the audit log.
func (g *Guard) Locked(src netip.Addr, user string) (bool, string) {
	l, ok := g.Lockout(src, user)
	if !ok {
		return false, ""
	}
	return true, l.Kind + " locked out after repeated failures"
}

// Lockout returns the lockout of src, else of user (empty: not checked).
func (g *Guard) Lockout(src netip.Addr, user string) (Lock, bool) {
	src = src.Unmap()
	g.mu.Lock()
	now := g.now()
	var evs []Event
	var l Lock
	found := false
	if e := g.sources[src]; e != nil {
		if now.Before(e.lockedUntil) {
			l, found = Lock{Kind: KindSource, Until: e.lockedUntil}, true
		}
		evs = g.expired(evs, e, now, Event{Kind: KindSource, Source: src})
	}
	if e := g.users[user]; user != "" && e != nil {
		if !found && now.Before(e.lockedUntil) {
			l, found = Lock{Kind: KindUser, Until: e.lockedUntil}, true
		}
		evs = g.expired(evs, e, now, Event{Kind: KindUser, User: user})
	}
	g.mu.Unlock()
	g.emit(evs)
	return l, found
}

// expired appends the unlock event of e if its announced lock has ended.
func (g *Guard) expired(evs []Event, e *entry, now time.Time, ev Event) []Event {
	if e.announced && !now.Before(e.lockedUntil) {
		e.announced = false
		evs = append(evs, ev)
	}
	return evs
}

// locked marks e locked and returns the lock event.
func (g *Guard) locked(e *entry, now time.Time, n int, ev Event) Event {
	e.lockedUntil = now.Add(g.cfg.Lockout)
	e.announced = true
	ev.Locked, ev.Until, ev.Failures = true, e.lockedUntil, n
	return ev
}

func (g *Guard) emit(evs []Event) {
	for _, ev := range evs {
		who := slog.String("user", ev.User)
		if ev.Kind == KindSource {
			who = slog.String("source", ev.Source.String())
		}
		if ev.Locked {
			g.logger.Warn("bastion: locked out", who, "failures", ev.Failures, "until", ev.Until)
		} else {
			g.logger.Info("bastion: lockout ended", who)
		}
		if g.onLock != nil {
			g.onLock(ev)
		}
	}
}

// Sweep reports the unlock of every lockout that has ended (a caller
// runs it periodically so unlocks are recorded without a new attempt).
func (g *Guard) Sweep() {
	g.mu.Lock()
	now := g.now()
	var evs []Event
	for a, e := range g.sources {
		evs = g.expired(evs, e, now, Event{Kind: KindSource, Source: a})
		if !e.prune(now, g.cfg.Window) {
			delete(g.sources, a)
		}
	}
	for u, e := range g.users {
		evs = g.expired(evs, e, now, Event{Kind: KindUser, User: u})
		if !e.prune(now, g.cfg.Window) {
			delete(g.users, u)
		}
	}
	g.mu.Unlock()
	g.emit(evs)
}

// Fail records one failure from src against user (user empty or unknown:
// counted for the source only) and returns how long the caller should
// wait before answering, the backoff. It may start a report in the
// background.
func (g *Guard) Fail(src netip.Addr, user string, reason string) time.Duration {
	src = src.Unmap()
	g.mu.Lock()
	now := g.now()
	var evs []Event
	se := entryFor(g, g.sources, src, now)
	evs = g.expired(evs, se, now, Event{Kind: KindSource, Source: src})
	se.fails = append(se.fails, now)
	n := len(se.fails)
	if n >= g.cfg.SourceThreshold && !now.Before(se.lockedUntil) {
		evs = append(evs, g.locked(se, now, n, Event{Kind: KindSource, Source: src}))
	}
	report := g.reporter != nil && g.cfg.ReportThreshold > 0 && n >= g.cfg.ReportThreshold &&
		now.Sub(se.reportedAt) > g.cfg.Window
	if report {
		se.reportedAt = now
	}
	un := 0
	if user != "" {
		ue := entryFor(g, g.users, user, now)
		evs = g.expired(evs, ue, now, Event{Kind: KindUser, User: user})
		ue.fails = append(ue.fails, now)
		un = len(ue.fails)
		if un >= g.cfg.UserThreshold && !now.Before(ue.lockedUntil) {
			evs = append(evs, g.locked(ue, now, un, Event{Kind: KindUser, User: user}))
		}
	}
	g.mu.Unlock()
	g.emit(evs)

	if report {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := g.reporter.Report(ctx, src, "bastion: "+reason, n, g.cfg.Window)
			if err != nil {
				g.logger.Warn("bastion: report to blocklistd failed", "source", src, "err", err)
			}
			if g.onReport != nil {
				g.onReport(src, err)
			}
		}()
	}
	return g.backoff(max(n, un))
}

// backoff is BackoffBase doubled for every failure after the first, capped.
func (g *Guard) backoff(n int) time.Duration {
	d := g.cfg.BackoffBase
	for i := 1; i < n && d < g.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, g.cfg.BackoffMax)
}

// Success forgets the user's failures (not the source's).
func (g *Guard) Success(user string) {
	g.mu.Lock()
	now := g.now()
	var evs []Event
	if e := g.users[user]; e != nil && !now.Before(e.lockedUntil) {
		evs = g.expired(evs, e, now, Event{Kind: KindUser, User: user})
		delete(g.users, user)
	}
	g.mu.Unlock()
	g.emit(evs)
}

// Tracked returns how many sources and users hold state (metrics, tests).
func (g *Guard) Tracked() (sources, users int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sources), len(g.users)
}

func entryFor[K comparable](g *Guard, m map[K]*entry, k K, now time.Time) *entry {
	if e := m[k]; e != nil {
		e.prune(now, g.cfg.Window)
		return e
	}
	if len(m) >= g.cfg.MaxTracked {
		for key, e := range m {
			if !e.prune(now, g.cfg.Window) {
				delete(m, key)
			}
		}
		// Still full: drop arbitrary entries rather than grow without bound.
		for key := range m {
			if len(m) < g.cfg.MaxTracked {
				break
			}
			delete(m, key)
		}
	}
	e := &entry{}
	m[k] = e
	return e
}
