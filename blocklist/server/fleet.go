package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
	"github.com/rampart-sec/rampart/blocklist/store"
	"go4.org/netipx"
)

// Fleet hosts are the IP SANs of agents' certificates, learned when the
// agents sync. A ban or import covering one is refused unless forced, and
// reports of one are ignored: blocklistd never cuts the fleet off from
// itself by mistake. A host not seen for fleetForget is forgotten.
const (
	fleetForget  = 30 * 24 * time.Hour
	fleetRefresh = time.Hour // how often a known host's sighting is written again
)

type fleet struct {
	mu    sync.RWMutex
	hosts map[netip.Addr]store.FleetHost
	set   *netipx.IPSet
	queue chan store.FleetHost
}

func newFleet() *fleet {
	return &fleet{hosts: map[netip.Addr]store.FleetHost{}, set: &netipx.IPSet{}, queue: make(chan store.FleetHost, 1024)}
}

func (f *fleet) rebuildLocked() {
	var b netipx.IPSetBuilder
	for a := range f.hosts {
		b.Add(a)
	}
	f.set, _ = b.IPSet()
}

// merge adds hosts read from the store (another replica's sightings).
func (f *fleet) merge(hs []store.FleetHost) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := false
	for _, h := range hs {
		if old, ok := f.hosts[h.Addr]; !ok || old.LastSeen.Before(h.LastSeen) {
			f.hosts[h.Addr] = h
			changed = changed || !ok
		}
	}
	if changed {
		f.rebuildLocked()
	}
}

// forget drops hosts not seen since before.
func (f *fleet) forget(before time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.hosts)
	for a, h := range f.hosts {
		if h.LastSeen.Before(before) {
			delete(f.hosts, a)
		}
	}
	if len(f.hosts) != n {
		f.rebuildLocked()
	}
}

// saw records the IP SANs of an agent's certificate, queueing the ones new
// or not written for fleetRefresh.
func (f *fleet) saw(cert *x509.Certificate, name string, now time.Time) {
	var due []store.FleetHost
	f.mu.RLock()
	for _, ip := range cert.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		if h, ok := f.hosts[a]; !ok || h.Name != name || now.Sub(h.LastSeen) >= fleetRefresh {
			due = append(due, store.FleetHost{Addr: a, Name: name, LastSeen: now})
		}
	}
	f.mu.RUnlock()
	if len(due) == 0 {
		return
	}
	f.mu.Lock()
	added := false
	for _, h := range due {
		_, known := f.hosts[h.Addr]
		added = added || !known
		f.hosts[h.Addr] = h
	}
	if added {
		f.rebuildLocked()
	}
	f.mu.Unlock()
	for _, h := range due {
		select {
		case f.queue <- h:
		default: // written at the next sighting
		}
	}
}

// covering returns the fleet hosts inside p.
func (f *fleet) covering(p netip.Prefix) []store.FleetHost {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.set.OverlapsPrefix(p) {
		return nil
	}
	var out []store.FleetHost
	for a, h := range f.hosts {
		if p.Contains(a) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b store.FleetHost) int { return a.Addr.Compare(b.Addr) })
	return out
}

func (f *fleet) list() []adminapi.FleetHost {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]adminapi.FleetHost, 0, len(f.hosts))
	for _, h := range f.hosts {
		out = append(out, adminapi.FleetHost{Addr: h.Addr.String(), Name: h.Name, LastSeen: h.LastSeen})
	}
	slices.SortFunc(out, func(a, b adminapi.FleetHost) int {
		return netip.MustParseAddr(a.Addr).Compare(netip.MustParseAddr(b.Addr))
	})
	return out
}

// fleetError says which fleet hosts p covers, or nil.
func (s *Server) fleetError(p netip.Prefix) error {
	hs := s.fleet.covering(p)
	if len(hs) == 0 {
		return nil
	}
	h := hs[0]
	more := ""
	if len(hs) > 1 {
		more = fmt.Sprintf(" and %d more fleet hosts", len(hs)-1)
	}
	return fmt.Errorf("%s covers %s, fleet host %q (from its agent certificate, last seen %s)%s; force it to ban anyway",
		p, h.Addr, h.Name, h.LastSeen.UTC().Format(time.RFC3339), more)
}

// loadFleet reads the fleet hosts the store remembers.
func (s *Server) loadFleet(ctx context.Context) error {
	fs, ok := s.st.(store.FleetStore)
	if !ok {
		return nil
	}
	hs, err := fs.FleetHosts(ctx, time.Now().Add(-fleetForget))
	if err != nil {
		return err
	}
	s.fleet.merge(hs)
	s.fleet.forget(time.Now().Add(-fleetForget))
	return nil
}

// runFleet writes sightings and reads other replicas' until ctx ends.
func (s *Server) runFleet(ctx context.Context) {
	fs, ok := s.st.(store.FleetStore)
	if !ok {
		return
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-s.fleet.queue:
			batch := []store.FleetHost{h}
		drain:
			for len(batch) < 256 {
				select {
				case h := <-s.fleet.queue:
					batch = append(batch, h)
				default:
					break drain
				}
			}
			if err := fs.PutFleetHosts(ctx, batch); err != nil && ctx.Err() == nil {
				s.log.Warn("blocklistd: recording fleet hosts failed", "err", err)
			}
			for _, h := range batch {
				s.log.Debug("blocklistd: fleet host seen", "addr", h.Addr, "name", h.Name)
			}
		case <-tick.C:
			if err := s.loadFleet(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("blocklistd: reading fleet hosts failed", "err", err)
			}
		}
	}
}
