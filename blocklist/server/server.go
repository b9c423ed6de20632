// Package server is blocklistd: it turns reports, public feeds and manual
// bans into decisions, keeps them in a [store.Store], and distributes the
// resulting blocklist to every agent over mutually authenticated TLS.
//
// # Decisions
//
// A decision bans a prefix on behalf of a source ("manual", "report",
// "feed:<name>") until it expires (or forever). The published blocklist is
// every decided prefix, minus prefixes already covered by a wider decision,
// minus the allowlist, which wins over every source; it never overlaps
// itself, so firewall backends can load it as is.
//
// Reports from authenticated reporters are counted fleet-wide per address
// (IPv6 addresses widened to a /64 by default); when the count within the
// window reaches the threshold the address is banned, for a time that
// doubles with every repeat offence up to a cap.
//
// # Distribution
//
// Each change the store records moves the blocklist version. An agent asks
// with the version it holds and gets a delta, or a full snapshot when it is
// new or too far behind; when it is current, the request waits until the
// next change (long poll), and one change wakes every waiting agent at once
// with an answer encoded once for all of them.
//
// # Authentication
//
// Every caller presents a client certificate chaining to the configured CA.
// Its role comes from URI SANs urn:rampart:role:<role>: agent may sync,
// reporter may report, admin may ban, unban, allow and list. A certificate
// without the role a call needs gets 403.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rampart-sec/rampart/blocklist/feed"
	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
	"github.com/rampart-sec/rampart/blocklist/internal/wire"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/pkg/config"
)

// Roles carried by client certificates.
const (
	RoleAgent    = "agent"
	RoleReporter = "reporter"
	RoleAdmin    = "admin"
	// RoleURIPrefix starts a role URI SAN.
	RoleURIPrefix = "urn:rampart:role:"
)

// Sources of decisions.
const (
	SourceManual = "manual"
	SourceReport = "report"
	SourceFeed   = "feed:" // followed by the feed's name
)

// Policy turns reports into decisions and bounds what may be banned.
type Policy struct {
	Threshold   int           // events within Window that ban an address (5)
	Window      time.Duration // (10m)
	BanTTL      time.Duration // first ban from reports (1h)
	MaxBanTTL   time.Duration // cap for doubling bans (7d)
	ForgetAfter time.Duration // an offender unbanned this long starts over (30d)
	IPv6Prefix  int           // reported IPv6 addresses are widened to this length (64)
	MinBits4    int           // broadest IPv4 ban allowed, as a prefix length (8)
	MinBits6    int           // broadest IPv6 ban allowed (32)
	ManualTTL   time.Duration // default for manual bans; 0 means never expire
}

// Config is everything the server needs besides its store.
type Config struct {
	Policy Policy
	// Allow is the static allowlist from the config file.
	Allow []netip.Prefix
	Feeds []feed.Feed
	// ReportRate and ReportBurst limit each reporter (per certificate name).
	ReportRate  float64
	ReportBurst int
	// MaxWait caps a sync long poll (60s).
	MaxWait time.Duration
	// FeedClient fetches feeds (http.DefaultClient when nil).
	FeedClient *http.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	p := &c.Policy
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if p.Threshold == 0 {
		p.Threshold = 5
	}
	def(&p.Window, 10*time.Minute)
	def(&p.BanTTL, time.Hour)
	def(&p.MaxBanTTL, 7*24*time.Hour)
	def(&p.ForgetAfter, 30*24*time.Hour)
	if p.IPv6Prefix == 0 {
		p.IPv6Prefix = 64
	}
	if p.MinBits4 == 0 {
		p.MinBits4 = 8
	}
	if p.MinBits6 == 0 {
		p.MinBits6 = 32
	}
	if c.ReportRate == 0 {
		c.ReportRate = 10
	}
	if c.ReportBurst == 0 {
		c.ReportBurst = 100
	}
	def(&c.MaxWait, 60*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FeedClient == nil {
		c.FeedClient = &http.Client{Timeout: 5 * time.Minute}
	}
}

// Server is blocklistd. Create it with [New], start its background work
// with [Server.Run] and serve [Server.Handler] over TLS.
type Server struct {
	cfg     Config
	st      store.Store
	log     *slog.Logger
	eng     *engine
	m       *serverMetrics
	limiter *limiter

	reportMu sync.Mutex // report decisions one at a time, so repeat counts are exact

	agentsMu sync.Mutex
	inflight map[string]int
	requests int                  // sync requests in flight
	lastSeen map[string]time.Time // for dropping per-agent metrics of agents gone

	fleet *fleet

	feedsMu sync.Mutex // guards feeds, runCtx, cfg.Feeds and cfg.Allow
	feeds   map[string]*feedRunner
	runCtx  context.Context // set by Run
}

// New loads the store's state and applies the static allowlist. reg may be
// nil.
func New(ctx context.Context, st store.Store, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg.setDefaults()
	if err := checkFeedNames(cfg.Feeds); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, st: st, log: log,
		feeds:    map[string]*feedRunner{},
		fleet:    newFleet(),
		eng:      newEngine(st, log, cfg.Now),
		limiter:  newLimiter(cfg.ReportRate, cfg.ReportBurst, cfg.Now),
		inflight: map[string]int{},
		lastSeen: map[string]time.Time{},
	}
	s.m = newServerMetrics(s)
	if reg != nil {
		if err := reg.Register(s.m); err != nil {
			return nil, fmt.Errorf("blocklistd: metrics: %w", err)
		}
	}
	if err := s.eng.load(ctx); err != nil {
		return nil, fmt.Errorf("blocklistd: %w", err)
	}
	if err := s.reconcileConfig(ctx); err != nil {
		return nil, fmt.Errorf("blocklistd: %w", err)
	}
	if err := s.loadFleet(ctx); err != nil {
		return nil, fmt.Errorf("blocklistd: %w", err)
	}
	return s, nil
}

// configAllowReason marks allowlist entries that come from the config file,
// so that removing one from the file removes it from the store.
const configAllowReason = "config file"

func (s *Server) reconcileConfig(ctx context.Context) error {
	_, decisions, allows := s.eng.snapshotDecisions()
	var muts []store.Mutation
	want := map[netip.Prefix]bool{}
	for _, p := range s.cfg.Allow {
		want[p] = true
	}
	for _, a := range allows {
		if a.Reason == configAllowReason && !want[a.Prefix] {
			muts = append(muts, store.Mutation{Op: store.DeleteAllow, Prefix: a.Prefix})
		}
		delete(want, a.Prefix)
	}
	for _, p := range s.cfg.Allow {
		if want[p] {
			muts = append(muts, store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: p, Reason: configAllowReason, Created: s.cfg.Now()}})
		}
	}
	feeds := map[string]bool{}
	for _, f := range s.cfg.Feeds {
		feeds[SourceFeed+f.Name] = true
	}
	for _, d := range decisions {
		if strings.HasPrefix(d.Source, SourceFeed) && !feeds[d.Source] {
			muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: d.Prefix, Source: d.Source})
		}
	}
	return s.applyBatches(ctx, muts)
}

func (s *Server) applyBatches(ctx context.Context, muts []store.Mutation) error {
	for len(muts) > 0 {
		n := min(len(muts), 5000)
		if _, err := s.eng.apply(ctx, muts[:n]); err != nil {
			return err
		}
		muts = muts[n:]
	}
	return nil
}

// Run does the background work until ctx ends: following other replicas'
// changes, expiring decisions, fetching feeds.
func (s *Server) Run(ctx context.Context) error {
	s.feedsMu.Lock()
	s.runCtx = ctx
	s.startFeedsLocked()
	s.feedsMu.Unlock()
	fleetDone := make(chan struct{})
	go func() { defer close(fleetDone); s.runFleet(ctx) }()
	defer func() { <-fleetDone }()
	defer func() {
		s.feedsMu.Lock()
		for name := range s.feeds {
			s.stopFeedLocked(name)
		}
		s.runCtx = nil
		s.feedsMu.Unlock()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(5 * time.Second)
	defer poll.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.st.Notify():
			s.catchUp(ctx)
		case <-poll.C:
			// Notifications can be lost while a LISTEN connection reconnects.
			s.catchUp(ctx)
		case <-tick.C:
			if err := s.eng.expire(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("blocklistd: expiry failed", "err", err)
			}
		case <-prune.C:
			s.forgetAgents(time.Now().Add(-24 * time.Hour))
			if p, ok := s.st.(interface {
				PruneReports(context.Context, time.Time) error
			}); ok {
				if err := p.PruneReports(ctx, s.cfg.Now().Add(-2*s.cfg.Policy.Window)); err != nil {
					s.log.Warn("blocklistd: prune reports", "err", err)
				}
			}
		}
	}
}

func (s *Server) catchUp(ctx context.Context) {
	if err := s.eng.catchUp(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("blocklistd: reading the store's change log failed", "err", err)
	}
}

// CatchUp reads changes other replicas made (Run does this on every
// notification).
func (s *Server) CatchUp(ctx context.Context) error { return s.eng.catchUp(ctx) }

// Version is the current blocklist version.
func (s *Server) Version() uint64 {
	v, _ := s.eng.currentVersion()
	return v
}

func (s *Server) tooBroad(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() < s.cfg.Policy.MinBits4
	}
	return p.Bits() < s.cfg.Policy.MinBits6
}

// Handler is the HTTP API. It must be served over TLS with client
// certificates required and verified (see [TLSConfig]); it refuses any
// request without a verified certificate.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+wire.PathSync, s.auth(RoleAgent, s.handleSync))
	mux.Handle("POST "+wire.PathReport, s.auth(RoleReporter, s.handleReport))
	mux.Handle("POST "+wire.PathBan, s.auth(RoleAdmin, s.handleBan))
	mux.Handle("POST "+wire.PathUnban, s.auth(RoleAdmin, s.handleUnban))
	mux.Handle("POST "+wire.PathAllow, s.auth(RoleAdmin, s.handleAllow))
	mux.Handle("POST "+wire.PathUnallow, s.auth(RoleAdmin, s.handleUnallow))
	mux.Handle("GET "+wire.PathList, s.auth(RoleAdmin, s.handleList))
	mux.Handle("GET "+adminapi.PathFeeds, s.auth(RoleAdmin, s.handleFeeds))
	mux.Handle("POST "+adminapi.PathFeedFetch, s.auth(RoleAdmin, s.handleFeedFetch))
	mux.Handle("POST "+adminapi.PathImport, s.auth(RoleAdmin, s.handleImport))
	mux.Handle("GET "+adminapi.PathFleet, s.auth(RoleAdmin, func(w http.ResponseWriter, r *http.Request, c caller) {
		writeJSON(w, http.StatusOK, s.fleet.list())
	}))
	return apiHandler{mux, s}
}

// apiHandler lets Serve count refused TLS handshakes in the server's metrics.
type apiHandler struct {
	http.Handler
	s *Server
}

func (a apiHandler) countHandshake(reason string) {
	a.s.m.tlsRefused.WithLabelValues(reason).Inc()
}

type caller struct {
	name  string
	roles []string
	cert  *x509.Certificate
}

// Identity returns the certificate's name and roles.
func Identity(cert *x509.Certificate) (name string, roles []string) {
	name = cert.Subject.CommonName
	if name == "" && len(cert.DNSNames) > 0 {
		name = cert.DNSNames[0]
	}
	for _, u := range cert.URIs {
		if r, ok := strings.CutPrefix(u.String(), RoleURIPrefix); ok && r != "" {
			roles = append(roles, r)
		}
	}
	return name, roles
}

func (s *Server) auth(role string, h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			s.refuse(w, r, "", http.StatusUnauthorized, "a client certificate from the internal CA is required")
			return
		}
		name, roles := Identity(r.TLS.VerifiedChains[0][0])
		if !slices.Contains(roles, role) {
			s.refuse(w, r, name, http.StatusForbidden, fmt.Sprintf("certificate %q lacks role %q (has %v)", name, role, roles))
			return
		}
		h(w, r, caller{name: name, roles: roles, cert: r.TLS.VerifiedChains[0][0]})
	})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, who string, code int, why string) {
	s.log.Warn("blocklistd: request refused", "path", r.URL.Path, "caller", who, "remote", r.RemoteAddr, "status", code, "reason", why)
	writeJSON(w, code, wire.Error{Error: why})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads exactly one JSON object of at most wire.MaxBody bytes
// with no unknown fields.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(10 * time.Second))
	r.Body = http.MaxBytesReader(w, r.Body, wire.MaxBody)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", wire.MaxBody)
		}
		return http.StatusBadRequest, fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return http.StatusBadRequest, errors.New("malformed JSON: data after the object")
	}
	return 0, nil
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	have, err := strconv.ParseUint(q.Get("have"), 10, 64)
	if err != nil && q.Get("have") != "" {
		s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("have %q: not a version", q.Get("have")))
		return
	}
	wait := s.cfg.MaxWait
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil || d < 0 {
			s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("wait %q: not a duration", ws))
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	s.fleet.saw(c.cert, c.name, time.Now())
	s.agentSeen(c.name, have, +1)
	defer s.agentSeen(c.name, have, -1)

	version, changed := s.eng.currentVersion()
	if have > version {
		// Another replica may be ahead of us; look before answering with a
		// full snapshot.
		s.catchUp(r.Context())
		version, changed = s.eng.currentVersion()
	}
	var timer <-chan time.Time
	for have == version {
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-changed:
			version, changed = s.eng.currentVersion()
		case <-timer:
			w.Header().Set(wire.VersionHeader, strconv.FormatUint(version, 10))
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			// The agent left, or we are shutting down: say so rather than
			// leave an empty 200 the agent cannot decode.
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, wire.Error{Error: "blocklistd is shutting down"})
			return
		}
	}
	data, version, full := s.eng.updateFor(have)
	if data == nil { // moved back to have meanwhile: impossible, versions only grow
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", wire.MediaType)
	w.Header().Set(wire.VersionHeader, strconv.FormatUint(version, 10))
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if full {
		s.m.syncs.WithLabelValues("full").Inc()
	} else {
		s.m.syncs.WithLabelValues("delta").Inc()
	}
	_, _ = w.Write(data)
}

func (s *Server) agentSeen(name string, have uint64, delta int) {
	version, _ := s.eng.currentVersion()
	lag := float64(0)
	if have < version {
		lag = float64(version - have)
	}
	s.m.agentLag.WithLabelValues(name).Set(lag)
	s.m.agentLastSync.WithLabelValues(name).SetToCurrentTime()
	s.agentsMu.Lock()
	s.lastSeen[name] = time.Now()
	s.requests += delta
	s.inflight[name] += delta
	if s.inflight[name] <= 0 {
		delete(s.inflight, name)
	}
	s.agentsMu.Unlock()
}

// forgetAgents drops the per-agent metrics of agents not seen since before.
func (s *Server) forgetAgents(before time.Time) {
	s.agentsMu.Lock()
	defer s.agentsMu.Unlock()
	for name, t := range s.lastSeen {
		if t.Before(before) && s.inflight[name] == 0 {
			delete(s.lastSeen, name)
			s.m.agentLag.DeleteLabelValues(name)
			s.m.agentLastSync.DeleteLabelValues(name)
		}
	}
}

// Report is the body of a reporter's POST /v1/report (what
// blocklist/client's Report sends), as [ParseReport] checks it.
type Report struct {
	Addr   string // one IP address
	Reason string // why, for the list and the logs
	Count  int    // matches the reporter saw
	Window string // Go duration the matches were seen in; "" is the server's threshold window
}

// ParseReport validates a report body: one address that [CheckBannable]
// accepts, a reason that [CheckReason] accepts, a count between 1 and
// 1,000,000, and an optional window up to 24h.
func ParseReport(body Report) (netip.Addr, int, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(body.Addr))
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("addr %q: not an IP address", clip(body.Addr))
	}
	if a.Zone() != "" {
		return netip.Addr{}, 0, fmt.Errorf("addr %q: zones are not allowed", clip(body.Addr))
	}
	a = a.Unmap()
	if err := CheckBannable(netip.PrefixFrom(a, a.BitLen())); err != nil {
		return netip.Addr{}, 0, fmt.Errorf("addr: %w", err)
	}
	if body.Count < 1 || body.Count > 1_000_000 {
		return netip.Addr{}, 0, fmt.Errorf("count %d: want 1 to 1000000", body.Count)
	}
	if err := CheckReason(body.Reason); err != nil {
		return netip.Addr{}, 0, err
	}
	if body.Window != "" {
		d, err := time.ParseDuration(body.Window)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return netip.Addr{}, 0, fmt.Errorf("window %q: want a duration up to 24h", clip(body.Window))
		}
	}
	return a, body.Count, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, c caller) {
	reject := func(code int, why string) {
		s.m.reportsRejected.WithLabelValues(rejectLabel(code)).Inc()
		s.refuse(w, r, c.name, code, "report: "+why)
	}
	if !s.limiter.allow(c.name) {
		reject(http.StatusTooManyRequests, "rate limit exceeded for this reporter")
		return
	}
	var body wire.Report
	if code, err := decodeJSON(w, r, &body); err != nil {
		reject(code, err.Error())
		return
	}
	addr, count, err := ParseReport(Report(body))
	if err != nil {
		reject(http.StatusBadRequest, err.Error())
		return
	}
	key := netip.PrefixFrom(addr, addr.BitLen())
	if addr.Is6() {
		key, _ = addr.Prefix(s.cfg.Policy.IPv6Prefix)
	}
	if s.eng.allowed(key) || s.eng.allowed(netip.PrefixFrom(addr, addr.BitLen())) {
		s.m.reportsAccepted.WithLabelValues("allowlisted").Inc()
		s.log.Info("blocklistd: report for an allowlisted address ignored", "reporter", c.name, "addr", addr, "reason", body.Reason)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "allowlisted: ignored"})
		return
	}
	if hs := s.fleet.covering(netip.PrefixFrom(addr, addr.BitLen())); len(hs) > 0 {
		s.m.reportsAccepted.WithLabelValues("fleet host").Inc()
		s.log.Warn("blocklistd: report of a fleet host ignored", "reporter", c.name, "addr", addr, "host", hs[0].Name, "reason", body.Reason)
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "fleet host: ignored"})
		return
	}
	status, err := s.countReport(r.Context(), key, count, c.name, body.Reason)
	if err != nil {
		s.log.Error("blocklistd: report not stored", "reporter", c.name, "addr", addr, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, wire.Error{Error: "store unavailable"})
		return
	}
	s.m.reportsAccepted.WithLabelValues(status).Inc()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": status})
}

func rejectLabel(code int) string {
	switch code {
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	}
	return "invalid"
}

// countReport records the events and bans key when the fleet-wide count
// reaches the threshold.
func (s *Server) countReport(ctx context.Context, key netip.Prefix, count int, reporter, reason string) (string, error) {
	now := s.cfg.Now()
	p := s.cfg.Policy
	// Counting is a durable write; outside reportMu, concurrent reports
	// share the store's commits. Only the ban is one at a time: of reports
	// crossing the threshold together, the first to take reportMu bans and
	// the others find its decision (apply publishes it before returning).
	total, err := s.st.CountReport(ctx, key, count, now, p.Window)
	if err != nil {
		return "", err
	}
	if total < p.Threshold {
		return "counted", nil
	}
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	s.eng.mu.RLock()
	cur, banned := s.eng.decisions[decKey{key, SourceReport}]
	off := s.eng.offenders[key]
	s.eng.mu.RUnlock()
	if banned && (cur.Expires.IsZero() || cur.Expires.After(now)) {
		return "already banned", nil
	}
	bans := off.Bans
	if !off.Last.IsZero() && now.Sub(off.Last) > p.ForgetAfter {
		bans = 0
	}
	ttl := p.BanTTL
	for range bans {
		ttl *= 2
		if ttl >= p.MaxBanTTL {
			break
		}
	}
	ttl = min(ttl, p.MaxBanTTL)
	d := store.Decision{Prefix: key, Action: store.ActionBan, Source: SourceReport,
		Reason:  fmt.Sprintf("%d events in %s, last from %s: %s", total, p.Window, reporter, reason),
		Created: now, Expires: now.Add(ttl)}
	_, err = s.eng.apply(ctx, []store.Mutation{
		{Op: store.PutDecision, Decision: &d},
		{Op: store.PutOffender, Offender: &store.Offender{Prefix: key, Bans: bans + 1, Last: now}},
	})
	if err != nil {
		return "", err
	}
	s.log.Info("blocklistd: banned from reports", "prefix", key, "ttl", ttl, "offence", bans+1, "events", total, "reporter", reporter)
	return "banned", nil
}

// ParsePrefix reads a prefix or a single address given by an operator or a
// client; host bits must be clear, IPv4-mapped IPv6 becomes IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("prefix %q: %w", clip(s), err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("prefix %q: not an address or prefix", clip(s))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("prefix %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	return p, nil
}

func (s *Server) handleBan(w http.ResponseWriter, r *http.Request, c caller) {
	var body wire.Ban
	if code, err := decodeJSON(w, r, &body); err != nil {
		s.refuse(w, r, c.name, code, "ban: "+err.Error())
		return
	}
	p, err := ParsePrefix(body.Prefix)
	if err != nil {
		s.refuse(w, r, c.name, http.StatusBadRequest, "ban: "+err.Error())
		return
	}
	if err := s.checkEntry(p); err != nil {
		s.refuse(w, r, c.name, http.StatusBadRequest, "ban: "+err.Error())
		return
	}
	force := r.URL.Query().Get("force") == "1"
	if err := s.fleetError(p); err != nil && !force {
		s.refuse(w, r, c.name, http.StatusConflict, "ban: "+err.Error())
		return
	}
	ttl := s.cfg.Policy.ManualTTL
	if body.TTL != "" {
		if ttl, err = config.ParseDuration(body.TTL); err != nil || ttl <= 0 {
			s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("ban: ttl %q: want a positive duration such as 1h or 7d", clip(body.TTL)))
			return
		}
	}
	if err := CheckReason(body.Reason); err != nil {
		s.refuse(w, r, c.name, http.StatusBadRequest, "ban: "+err.Error())
		return
	}
	now := s.cfg.Now()
	d := store.Decision{Prefix: p, Action: store.ActionBan, Source: SourceManual, Reason: body.Reason, Created: now}
	if ttl > 0 {
		d.Expires = now.Add(ttl)
	}
	if _, err := s.eng.apply(r.Context(), []store.Mutation{{Op: store.PutDecision, Decision: &d}}); err != nil {
		s.storeFailed(w, "ban", err)
		return
	}
	s.log.Info("blocklistd: manual ban", "prefix", p, "ttl", ttl, "by", c.name, "reason", body.Reason, "forced", force)
	status := "banned"
	if s.eng.allowed(p) {
		status = "recorded, but the allowlist covers it: not enforced"
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
}

func (s *Server) storeFailed(w http.ResponseWriter, what string, err error) {
	s.log.Error("blocklistd: store write failed", "op", what, "err", err)
	writeJSON(w, http.StatusServiceUnavailable, wire.Error{Error: what + ": store unavailable"})
}

func (s *Server) prefixRequest(w http.ResponseWriter, r *http.Request, c caller, what string) (netip.Prefix, string, bool) {
	var body wire.PrefixRequest
	if code, err := decodeJSON(w, r, &body); err != nil {
		s.refuse(w, r, c.name, code, what+": "+err.Error())
		return netip.Prefix{}, "", false
	}
	p, err := ParsePrefix(body.Prefix)
	if err != nil {
		s.refuse(w, r, c.name, http.StatusBadRequest, what+": "+err.Error())
		return netip.Prefix{}, "", false
	}
	if err := CheckReason(body.Reason); err != nil {
		s.refuse(w, r, c.name, http.StatusBadRequest, what+": "+err.Error())
		return netip.Prefix{}, "", false
	}
	return p, body.Reason, true
}

func (s *Server) handleUnban(w http.ResponseWriter, r *http.Request, c caller) {
	p, _, ok := s.prefixRequest(w, r, c, "unban")
	if !ok {
		return
	}
	ch, err := s.eng.apply(r.Context(), []store.Mutation{{Op: store.DeleteDecision, Prefix: p}})
	if err != nil {
		s.storeFailed(w, "unban", err)
		return
	}
	if len(ch.Mutations) == 0 {
		writeJSON(w, http.StatusNotFound, wire.Error{Error: fmt.Sprintf("unban: no decision on %s", p)})
		return
	}
	s.log.Info("blocklistd: unban", "prefix", p, "by", c.name, "decisions", len(ch.Mutations))
	writeJSON(w, http.StatusOK, map[string]string{"status": fmt.Sprintf("removed %d decision(s)", len(ch.Mutations))})
}

func (s *Server) handleAllow(w http.ResponseWriter, r *http.Request, c caller) {
	p, reason, ok := s.prefixRequest(w, r, c, "allow")
	if !ok {
		return
	}
	if s.tooBroad(p) {
		// An allow entry this wide would silently switch the blocklist off.
		s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("allow: %s is broader than the policy allows (/%d for IPv4, /%d for IPv6)", p, s.cfg.Policy.MinBits4, s.cfg.Policy.MinBits6))
		return
	}
	a := store.Allow{Prefix: p, Reason: reason, Created: s.cfg.Now()}
	if _, err := s.eng.apply(r.Context(), []store.Mutation{{Op: store.PutAllow, Allow: &a}}); err != nil {
		s.storeFailed(w, "allow", err)
		return
	}
	s.log.Info("blocklistd: allow", "prefix", p, "by", c.name, "reason", reason)
	writeJSON(w, http.StatusOK, map[string]string{"status": "allowed"})
}

func (s *Server) handleUnallow(w http.ResponseWriter, r *http.Request, c caller) {
	p, _, ok := s.prefixRequest(w, r, c, "unallow")
	if !ok {
		return
	}
	ch, err := s.eng.apply(r.Context(), []store.Mutation{{Op: store.DeleteAllow, Prefix: p}})
	if err != nil {
		s.storeFailed(w, "unallow", err)
		return
	}
	if len(ch.Mutations) == 0 {
		writeJSON(w, http.StatusNotFound, wire.Error{Error: fmt.Sprintf("unallow: %s is not on the allowlist", p)})
		return
	}
	s.log.Info("blocklistd: unallow", "prefix", p, "by", c.name)
	writeJSON(w, http.StatusOK, map[string]string{"status": "removed from the allowlist"})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	var within netip.Prefix
	if ps := q.Get("prefix"); ps != "" {
		var err error
		if within, err = ParsePrefix(ps); err != nil {
			s.refuse(w, r, c.name, http.StatusBadRequest, "list: "+err.Error())
			return
		}
	}
	limit := 0
	if ls := q.Get("limit"); ls != "" {
		n, err := strconv.Atoi(ls)
		if err != nil || n < 0 {
			s.refuse(w, r, c.name, http.StatusBadRequest, fmt.Sprintf("list: limit %q: want a count", clip(ls)))
			return
		}
		limit = n
	}
	source := q.Get("source")
	version, ds, as := s.eng.snapshotDecisions()
	keep := func(p netip.Prefix) bool { return !within.IsValid() || within.Overlaps(p) }
	ds = slices.DeleteFunc(ds, func(d store.Decision) bool {
		switch {
		case !keep(d.Prefix), source == "allow":
			return true
		case source == "":
			return false
		case strings.HasSuffix(source, ":"):
			return !strings.HasPrefix(d.Source, source)
		}
		return d.Source != source
	})
	as = slices.DeleteFunc(as, func(a store.Allow) bool { return !keep(a.Prefix) || (source != "" && source != "allow") })
	total := len(ds)
	slices.SortFunc(ds, func(a, b store.Decision) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if a.Prefix.Bits() != b.Prefix.Bits() {
			return a.Prefix.Bits() - b.Prefix.Bits()
		}
		return strings.Compare(a.Source, b.Source)
	})
	slices.SortFunc(as, func(a, b store.Allow) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	if limit > 0 {
		ds = ds[:min(limit, len(ds))]
		as = as[:min(limit, len(as))]
	}
	out := struct {
		wire.List
		Total int `json:"total"`
	}{wire.List{Version: version, Decisions: make([]wire.Decision, 0, len(ds)), Allow: make([]wire.Allow, 0, len(as))}, total}
	for _, d := range ds {
		wd := wire.Decision{Prefix: d.Prefix.String(), Action: d.Action, Source: d.Source, Reason: d.Reason, Created: d.Created}
		if !d.Expires.IsZero() {
			exp := d.Expires
			wd.Expires = &exp
		}
		out.Decisions = append(out.Decisions, wd)
	}
	for _, a := range as {
		out.Allow = append(out.Allow, wire.Allow{Prefix: a.Prefix.String(), Reason: a.Reason, Created: a.Created})
	}
	writeJSON(w, http.StatusOK, out)
}

// TLSConfig builds the server side of mTLS: the server's certificate and
// key, and the CA bundle client certificates must chain to. Certificate
// files are re-read when they change on disk, so a renewal needs no restart.
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("client CA bundle %s: no PEM certificates", clientCAFile)
	}
	rl := &reloader{certFile: certFile, keyFile: keyFile}
	if _, err := rl.get(nil); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		GetCertificate: rl.get,
		NextProtos:     []string{"h2", "http/1.1"},
	}, nil
}

type reloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	mod               time.Time
	checked           time.Time
}

func (rl *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.cert != nil && time.Since(rl.checked) < 10*time.Second {
		return rl.cert, nil
	}
	rl.checked = time.Now()
	fi, err := os.Stat(rl.certFile)
	if err == nil && rl.cert != nil && fi.ModTime().Equal(rl.mod) {
		return rl.cert, nil
	}
	c, err := tls.LoadX509KeyPair(rl.certFile, rl.keyFile)
	if err != nil {
		if rl.cert != nil {
			return rl.cert, nil // keep serving with the old one; a renewal may be half written
		}
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	rl.cert = &c
	if fi != nil {
		rl.mod = fi.ModTime()
	}
	return rl.cert, nil
}

// Serve serves h over TLS on ln until ctx ends, then shuts down, cutting
// long polls short.
//
// Refused TLS handshakes (no certificate, another CA, expired, revoked)
// are logged at warning with the remote address, rate-limited, and, when
// h is [Server.Handler], counted in
// rampart_blocklistd_tls_handshake_failures_total{reason}.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) error {
	var count func(string)
	if a, ok := h.(apiHandler); ok {
		count = a.countHandshake
	}
	hl := newHandshakeLog(log, count)
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout: net/http keeps the read deadline during the handler
		// and cancels the request when it passes, which would cut every long
		// poll short. Bodies get their own deadline in decodeJSON.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       stdlog.New(hl, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}
