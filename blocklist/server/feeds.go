package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-sec/rampart/blocklist/feed"
	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
	"github.com/rampart-sec/rampart/blocklist/store"
)

// ErrNoSuchFeed is returned for a feed name the configuration lacks.
var ErrNoSuchFeed = errors.New("no such feed")

// feedRunner fetches one feed on its interval and on request.
type feedRunner struct {
	f       feed.Feed
	fetcher *feed.Fetcher
	cancel  context.CancelFunc
	done    chan struct{}
	reqs    chan fetchReq

	mu     sync.Mutex
	status adminapi.FeedStatus
}

type fetchReq struct {
	accept bool
	reply  chan adminapi.FeedOutcome
}

// startFeedsLocked starts a runner for every configured feed without one.
// s.feedsMu is held.
func (s *Server) startFeedsLocked() {
	for _, f := range s.cfg.Feeds {
		if _, ok := s.feeds[f.Name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(s.runCtx)
		r := &feedRunner{f: f, fetcher: &feed.Fetcher{Feed: f, Client: s.cfg.FeedClient},
			cancel: cancel, done: make(chan struct{}), reqs: make(chan fetchReq),
			status: adminapi.FeedStatus{Name: f.Name, URL: f.URL}}
		s.feeds[f.Name] = r
		go s.runFeed(ctx, r)
	}
}

func (s *Server) stopFeedLocked(name string) {
	r := s.feeds[name]
	r.cancel()
	<-r.done
	delete(s.feeds, name)
}

// Reconfigure applies a new allowlist and feed list without a restart
// (blocklistd serve does it on SIGHUP and when its config file changes):
// feeds added start, feeds removed stop and their decisions go, feeds
// changed restart (their entries stay until the next fetch replaces them,
// under the same limits as any fetch).
func (s *Server) Reconfigure(ctx context.Context, allow []netip.Prefix, feeds []feed.Feed) error {
	if err := checkFeedNames(feeds); err != nil {
		return err
	}
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	want := map[string]feed.Feed{}
	for _, f := range feeds {
		want[f.Name] = f
	}
	for name, r := range s.feeds {
		if nf, ok := want[name]; !ok || !reflect.DeepEqual(nf, r.f) {
			s.stopFeedLocked(name)
		}
	}
	s.cfg.Allow = slices.Clone(allow)
	s.cfg.Feeds = slices.Clone(feeds)
	if err := s.reconcileConfig(ctx); err != nil {
		return fmt.Errorf("blocklistd: reconfigure: %w", err)
	}
	if s.runCtx != nil {
		s.startFeedsLocked()
	}
	s.log.Info("blocklistd: configuration reloaded", "allow", len(allow), "feeds", len(feeds))
	return nil
}

func checkFeedNames(feeds []feed.Feed) error {
	seen := map[string]bool{}
	for _, f := range feeds {
		if f.Name == "" || strings.ContainsAny(f.Name, " |") || seen[f.Name] {
			return fmt.Errorf("blocklistd: feed name %q: want a unique, non-empty name without spaces", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

func (s *Server) runFeed(ctx context.Context, r *feedRunner) {
	defer close(r.done)
	interval := r.f.Interval
	if interval <= 0 {
		interval = 12 * time.Hour
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			s.fetchFeed(ctx, r, false)
			timer.Reset(interval)
		case req := <-r.reqs:
			req.reply <- s.fetchFeed(ctx, r, req.accept)
		}
	}
}

// FetchFeed fetches a feed now, on this replica; accept takes an empty or
// shrunk list its limits would refuse (never one that is not a list).
func (s *Server) FetchFeed(ctx context.Context, name string, accept bool) (adminapi.FeedOutcome, error) {
	s.feedsMu.Lock()
	r := s.feeds[name]
	s.feedsMu.Unlock()
	if r == nil {
		return adminapi.FeedOutcome{}, fmt.Errorf("feed %q: %w (configured: %s)", name, ErrNoSuchFeed, strings.Join(s.feedNames(), ", "))
	}
	req := fetchReq{accept: accept, reply: make(chan adminapi.FeedOutcome, 1)}
	select {
	case r.reqs <- req:
	case <-r.done:
		return adminapi.FeedOutcome{}, fmt.Errorf("feed %q: %w (it was just reconfigured)", name, ErrNoSuchFeed)
	case <-ctx.Done():
		return adminapi.FeedOutcome{}, ctx.Err()
	}
	select {
	case out := <-req.reply:
		return out, nil
	case <-ctx.Done():
		return adminapi.FeedOutcome{}, ctx.Err()
	}
}

func (s *Server) feedNames() []string {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	var out []string
	for _, f := range s.cfg.Feeds {
		out = append(out, f.Name)
	}
	return out
}

// FeedStatus reports every configured feed, in configuration order.
func (s *Server) FeedStatus() []adminapi.FeedStatus {
	s.feedsMu.Lock()
	var out []adminapi.FeedStatus
	for _, f := range s.cfg.Feeds {
		st := adminapi.FeedStatus{Name: f.Name, URL: f.URL}
		if r := s.feeds[f.Name]; r != nil {
			r.mu.Lock()
			st = r.status
			r.mu.Unlock()
		}
		out = append(out, st)
	}
	s.feedsMu.Unlock()
	for i := range out {
		out[i].Entries = len(s.feedPrefixes(SourceFeed + out[i].Name))
	}
	return out
}

// feedPrefixes returns source's decided prefixes, sorted.
func (s *Server) feedPrefixes(source string) []netip.Prefix {
	var out []netip.Prefix
	s.eng.mu.RLock()
	for k := range s.eng.decisions {
		if k.source == source {
			out = append(out, k.prefix)
		}
	}
	s.eng.mu.RUnlock()
	slices.SortFunc(out, feed.ComparePrefix)
	return out
}

// fetchFeed fetches, checks and stores one feed. Anything but a list that
// its limits accept leaves the feed's entries as they are.
func (s *Server) fetchFeed(ctx context.Context, r *feedRunner, accept bool) adminapi.FeedOutcome {
	name := r.f.Name
	out := adminapi.FeedOutcome{Feed: name}
	r.mu.Lock()
	r.status.LastAttempt = time.Now()
	r.mu.Unlock()
	fail := func(reason string, err error) adminapi.FeedOutcome {
		if ctx.Err() != nil {
			out.Status, out.Error = "refused", ctx.Err().Error()
			return out
		}
		s.m.feedFailures.WithLabelValues(name, reason).Inc()
		s.log.Warn("blocklistd: feed fetch failed; keeping its previous entries", "feed", name, "reason", reason, "err", err)
		r.mu.Lock()
		r.status.LastError, r.status.LastReason = err.Error(), reason
		r.status.Failures++
		r.mu.Unlock()
		out.Status, out.Reason, out.Error = "refused", reason, err.Error()
		out.Entries = len(s.feedPrefixes(SourceFeed + name))
		return out
	}
	res, err := r.fetcher.Fetch(ctx)
	if err != nil {
		reason := feed.ReasonFetch
		var rf *feed.Refusal
		if errors.As(err, &rf) {
			reason = rf.Reason
		}
		return fail(reason, err)
	}
	succeeded := func() {
		r.mu.Lock()
		r.status.LastSuccess = time.Now()
		r.status.LastError, r.status.LastReason, r.status.Failures = "", "", 0
		r.mu.Unlock()
	}
	if res.NotModified {
		s.log.Debug("blocklistd: feed not modified", "feed", name)
		succeeded()
		out.Status = "not modified"
		out.Entries = len(s.feedPrefixes(SourceFeed + name))
		return out
	}
	rejected := res.RejectedCount
	logged := 0
	logReject := func(line string) {
		if logged < 10 {
			s.log.Warn("blocklistd: feed line rejected", "feed", name, "line", line)
		} else if logged == 10 {
			s.log.Warn("blocklistd: more rejected feed lines not logged", "feed", name)
		}
		logged++
	}
	for _, le := range res.Rejected {
		logReject(le.Error())
	}
	next := make([]netip.Prefix, 0, len(res.Prefixes))
	for _, p := range res.Prefixes {
		if err := s.checkEntry(p); err != nil {
			rejected++
			logReject(err.Error())
			continue
		}
		next = append(next, p)
	}
	prev := s.feedPrefixes(SourceFeed + name)
	if err := feed.Judge(name, prev, next, rejected, r.f.Limits, accept); err != nil {
		return fail(err.(*feed.Refusal).Reason, err)
	}
	s.m.feedRejected.WithLabelValues(name).Add(float64(rejected))
	added, removed, err := s.reconcileFeed(ctx, name, prev, next)
	if err != nil {
		return fail(feed.ReasonStore, err)
	}
	r.fetcher.Commit(res)
	succeeded()
	s.log.Info("blocklistd: feed loaded", "feed", name, "prefixes", len(next), "added", added, "removed", removed,
		"rejected", rejected, "accepted_by_operator", accept)
	out.Status, out.Entries, out.Added, out.Removed = "loaded", len(next), added, removed
	return out
}

// checkEntry is what every ban from a list (feed entry, import line) must
// pass: CheckBannable and the policy's width bounds.
func (s *Server) checkEntry(p netip.Prefix) error {
	if s.tooBroad(p) {
		return fmt.Errorf("%s is broader than the policy allows (/%d for IPv4, /%d for IPv6)", p, s.cfg.Policy.MinBits4, s.cfg.Policy.MinBits6)
	}
	return CheckBannable(p)
}

// reconcileFeed makes the feed's decisions exactly next, both sorted.
func (s *Server) reconcileFeed(ctx context.Context, name string, prev, next []netip.Prefix) (added, removed int, err error) {
	source := SourceFeed + name
	now := s.cfg.Now()
	var muts []store.Mutation
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		var c int
		switch {
		case i == len(prev):
			c = 1
		case j == len(next):
			c = -1
		default:
			c = feed.ComparePrefix(prev[i], next[j])
		}
		switch {
		case c == 0:
			i++
			j++
		case c < 0:
			muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: prev[i], Source: source})
			removed++
			i++
		default:
			muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
				Prefix: next[j], Action: store.ActionBan, Source: source, Reason: "listed by feed " + name, Created: now}})
			added++
			j++
		}
	}
	return added, removed, s.applyBatches(ctx, muts)
}
