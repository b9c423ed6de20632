package blocklist_test

// The generator of the delta property (issue 12): seeded random sequences
// of what changes blocklistd's published set (bans, unbans, expiries,
// allowlist changes, feed updates, several of them in one change), over
// prefixes that nest (/32 in /30 in /24 in /16 in /8; IPv6 /128 in /64 in
// /48) and repeat. The runners are in property_delta_test.go.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// propOp is one operator-visible event.
type propOp struct {
	Kind    string // ban, unban, expire, allow, unallow, feed, batch, burst, restart
	Prefix  netip.Prefix
	Source  string         // ban: manual or report
	TTL     time.Duration  // ban: 0 never expires
	Advance time.Duration  // expire: how far the clock moves
	Feed    string         // feed: its name
	List    []netip.Prefix // feed: what the feed lists now
	Sub     []propOp       // batch: bans, unbans and allowlist changes in one store change; burst: one change each
}

func (o propOp) String() string {
	switch o.Kind {
	case "ban":
		s := fmt.Sprintf("ban %s (%s", o.Prefix, o.Source)
		if o.TTL > 0 {
			s += ", ttl " + o.TTL.String()
		}
		return s + ")"
	case "unban", "allow", "unallow":
		return o.Kind + " " + o.Prefix.String()
	case "expire":
		return "clock +" + o.Advance.String() + ", expire"
	case "feed":
		return fmt.Sprintf("feed %s lists %v", o.Feed, o.List)
	case "batch":
		var parts []string
		for _, s := range o.Sub {
			parts = append(parts, s.String())
		}
		return "one change: " + strings.Join(parts, "; ")
	case "burst":
		var parts []string
		for _, s := range o.Sub {
			parts = append(parts, s.String())
		}
		return "while the agent waits: " + strings.Join(parts, "; ")
	case "restart":
		return "restart the agent"
	}
	return o.Kind
}

// genOps returns n operations drawn from seed.
func genOps(seed uint64, n int) []propOp {
	g := firewalltest.NewPrefixes(seed)
	r := g.Rand()
	var banned, allowed []netip.Prefix
	// Mostly lift something recent, so that lifting is seldom a no-op.
	pick := func(from []netip.Prefix) netip.Prefix {
		if len(from) > 0 && r.IntN(5) != 0 {
			return from[max(0, len(from)-1-r.IntN(6))]
		}
		return g.Prefix()
	}
	allowPrefix := func() netip.Prefix {
		for {
			p := g.Prefix()
			if p.Bits() >= 24 && p.Addr().Is4() || p.Bits() >= 64 {
				return p
			}
		}
	}
	single := func() propOp {
		switch k := r.IntN(100); {
		case k < 40:
			o := propOp{Kind: "ban", Prefix: g.Prefix(), Source: server.SourceManual}
			if r.IntN(3) == 0 {
				o.Source = server.SourceReport
			}
			if r.IntN(2) == 0 {
				o.TTL = time.Duration(1+r.IntN(20)) * time.Minute
			}
			if o.Prefix.Bits() < 24 || o.Prefix.Addr().Is6() && o.Prefix.Bits() < 64 {
				// Wide bans expire soon, or they would cover the rest of
				// the sequence and make most later steps no-ops.
				o.TTL = time.Duration(1+r.IntN(6)) * time.Minute
			}
			banned = append(banned, o.Prefix)
			return o
		case k < 72:
			return propOp{Kind: "unban", Prefix: pick(banned)}
		case k < 85:
			p := allowPrefix()
			allowed = append(allowed, p)
			return propOp{Kind: "allow", Prefix: p}
		default:
			return propOp{Kind: "unallow", Prefix: pick(allowed)}
		}
	}
	var ops []propOp
	for len(ops) < n {
		switch k := r.IntN(100); {
		case k < 52:
			ops = append(ops, single())
		case k < 62:
			ops = append(ops, propOp{Kind: "expire", Advance: time.Duration(1+r.IntN(8)) * time.Minute})
		case k < 78:
			o := propOp{Kind: "feed", Feed: []string{"a", "b"}[r.IntN(2)], List: g.List(4)}
			if r.IntN(6) == 0 {
				o.List = nil // the feed empties
			}
			ops = append(ops, o)
		case k < 87:
			o := propOp{Kind: "burst"}
			for range 2 + r.IntN(4) {
				o.Sub = append(o.Sub, single())
			}
			ops = append(ops, o)
		case k < 89:
			ops = append(ops, propOp{Kind: "restart"})
		case k < 97:
			o := propOp{Kind: "batch"}
			for range 2 + r.IntN(3) {
				o.Sub = append(o.Sub, single())
			}
			if r.IntN(2) == 0 {
				// Add and remove one prefix in the same change.
				p := g.Prefix()
				o.Sub = append(o.Sub, propOp{Kind: "ban", Prefix: p, Source: server.SourceManual}, propOp{Kind: "unban", Prefix: p})
				r.Shuffle(len(o.Sub), func(i, j int) { o.Sub[i], o.Sub[j] = o.Sub[j], o.Sub[i] })
			}
			ops = append(ops, o)
		default:
			if len(ops) > 0 {
				ops = append(ops, ops[r.IntN(len(ops))]) // the same thing again
			}
		}
	}
	return ops[:n]
}

// propModel is the reference: the decisions and allow entries, kept by
// the rules the store documents, and the clock.
type propModel struct {
	now       time.Time
	decisions map[[2]string]store.Decision // prefix, source
	allow     map[netip.Prefix]bool
}

func newPropModel() *propModel {
	return &propModel{now: time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC),
		decisions: map[[2]string]store.Decision{}, allow: map[netip.Prefix]bool{}}
}

// mutations turns o into the one store change blocklistd would make for
// it (the admin API, the expiry loop, a feed reload), and applies it to
// the model.
func (m *propModel) mutations(o propOp) []store.Mutation {
	var muts []store.Mutation
	switch o.Kind {
	case "ban":
		d := store.Decision{Prefix: o.Prefix, Action: store.ActionBan, Source: o.Source, Reason: "property", Created: m.now}
		if o.TTL > 0 {
			d.Expires = m.now.Add(o.TTL)
		}
		muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &d})
	case "unban":
		muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: o.Prefix})
	case "allow":
		muts = append(muts, store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: o.Prefix, Reason: "property", Created: m.now}})
	case "unallow":
		muts = append(muts, store.Mutation{Op: store.DeleteAllow, Prefix: o.Prefix})
	case "expire":
		m.now = m.now.Add(o.Advance)
		for _, k := range m.sortedKeys() {
			d := m.decisions[k]
			if !d.Expires.IsZero() && !d.Expires.After(m.now) {
				muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: d.Prefix, Source: d.Source, IfExpiredBy: m.now})
			}
		}
	case "feed":
		source := server.SourceFeed + o.Feed
		want := map[netip.Prefix]bool{}
		for _, p := range o.List {
			want[p] = true
		}
		for _, k := range m.sortedKeys() {
			d := m.decisions[k]
			if d.Source == source && !want[d.Prefix] {
				muts = append(muts, store.Mutation{Op: store.DeleteDecision, Prefix: d.Prefix, Source: source})
			}
		}
		for _, p := range o.List {
			if _, ok := m.decisions[[2]string{p.String(), source}]; !ok && want[p] {
				want[p] = false // listed twice: put once
				muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
					Prefix: p, Action: store.ActionBan, Source: source, Reason: "listed by feed " + o.Feed, Created: m.now}})
			}
		}
	case "batch":
		for _, s := range o.Sub {
			muts = append(muts, m.mutations(s)...)
		}
		return muts // already applied to the model
	}
	for _, mu := range muts {
		m.apply(mu)
	}
	return muts
}

func (m *propModel) apply(mu store.Mutation) {
	switch mu.Op {
	case store.PutDecision:
		m.decisions[[2]string{mu.Decision.Prefix.String(), mu.Decision.Source}] = *mu.Decision
	case store.DeleteDecision:
		for k, d := range m.decisions {
			if d.Prefix != mu.Prefix || mu.Source != "" && d.Source != mu.Source {
				continue
			}
			if !mu.IfExpiredBy.IsZero() && (d.Expires.IsZero() || d.Expires.After(mu.IfExpiredBy)) {
				continue
			}
			delete(m.decisions, k)
		}
	case store.PutAllow:
		m.allow[mu.Allow.Prefix] = true
	case store.DeleteAllow:
		delete(m.allow, mu.Prefix)
	}
}

func (m *propModel) sortedKeys() [][2]string {
	var ks [][2]string
	for k := range m.decisions {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b [2]string) int { return strings.Compare(a[0]+"|"+a[1], b[0]+"|"+b[1]) })
	return ks
}
