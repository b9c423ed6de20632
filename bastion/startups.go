package bastion

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/rampart-sec/rampart/bastion/audit"
)

// startups counts connections still logging in (key exchange, key,
// second factor), in all and per source address: sshd's MaxStartups and
// PerSourceMaxStartups. Past either limit a new connection is dropped
// before its key exchange, so unauthenticated connections from one
// address cannot take every slot from everyone else.
type startups struct {
	mu    sync.Mutex
	total int
	bySrc map[netip.Addr]int
}

// Limits names for rampart_bastion_startups_dropped_total and the audit.
const (
	limitStartups          = "max_startups"
	limitStartupsPerSource = "max_startups_per_source"
)

// admit takes a slot for src, or names the limit that refuses it.
func (s *startups) admit(src netip.Addr, total, perSource int) (limit string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySrc == nil {
		s.bySrc = map[netip.Addr]int{}
	}
	if n := s.bySrc[src]; n >= perSource {
		return limitStartupsPerSource, n
	}
	if s.total >= total {
		return limitStartups, s.total
	}
	s.total++
	s.bySrc[src]++
	return "", 0
}

// done gives src's slot back (login finished or connection closed).
func (s *startups) done(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.bySrc[src]--; s.bySrc[src] <= 0 {
		delete(s.bySrc, src)
	}
}

// loggingIn is how many connections are still logging in (tests).
func (s *startups) loggingIn() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// dropStartup counts a connection dropped at a startup limit; the audit
// gets at most one record a minute per source (and for max_startups, one
// a minute in all), as a flood is what causes them.
func (s *Server) dropStartup(src netip.Addr, limit string, n int) {
	s.m.startups.WithLabelValues(limit).Inc()
	s.m.refusals.WithLabelValues(limit).Inc()
	key := src
	max := s.opts.Config.MaxStartupsPerSource
	if limit == limitStartups {
		key, max = netip.Addr{}, s.opts.Config.MaxStartups
	}
	if !s.notes.first(limit, key) {
		return
	}
	s.audit(audit.Record{Type: audit.TypeRefusal, Source: addrString(src), Method: limit, Result: audit.ResultFailure,
		Reason: fmt.Sprintf("%d connections still logging in (%s %d): connection dropped; further drops are counted in rampart_bastion_startups_dropped_total, audited at most once a minute", n, limit, max)})
}
