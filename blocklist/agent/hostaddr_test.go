package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// hostAddrs is an injected address source the test changes.
type hostAddrs struct {
	mu    sync.Mutex
	addrs []netip.Addr
}

func (h *hostAddrs) set(ss ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs = nil
	for _, s := range ss {
		h.addrs = append(h.addrs, netip.MustParseAddr(s))
	}
}

func (h *hostAddrs) get() ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.addrs), nil
}

// enforcesFullReplace checks that the fake firewall holds exactly what a
// full replace of entries with the host's current addresses gives.
func enforcesFullReplace(t *testing.T, what string, fake *firewalltest.Backend, pol firewall.Policy, entries []netip.Prefix) {
	t.Helper()
	want, _, err := pol.Build(entries)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fake.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok, diff := firewalltest.Equal(got, want); !ok {
		t.Errorf("%s: firewall differs from a full replace of %v: %s", what, entries, diff)
	}
}

// TestHostAddrsRecheck: an address the host gains inside a ban is
// unblocked, and blocked again when the host loses it, by the periodic
// re-check (called directly: no timing) and by a delta arriving after the
// change; nothing is touched while the addresses stay.
func TestHostAddrsRecheck(t *testing.T) {
	src := &hostAddrs{}
	src.set("192.0.2.1", "2001:db8:1::1")
	entries := pfx("10.9.0.0/24", "2001:db8:9::/48")
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: entries}},
	))
	h.policy.HostAddrs = src.get
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	a, ctx := h.agent, context.Background()
	h.blocked("10.9.0.5", "2001:db8:9::5")
	calls := len(h.fake.Calls())
	if a.recheckHostAddrs(ctx) {
		t.Error("re-check with unchanged addresses replaced the set")
	}
	if n := len(h.fake.Calls()); n != calls {
		t.Errorf("re-check with unchanged addresses made %d firewall calls", n-calls)
	}

	// The host gains addresses inside both bans (and the order of the
	// source changes, which is no change).
	src.set("2001:db8:9::5", "10.9.0.5", "2001:db8:1::1", "192.0.2.1")
	if !a.recheckHostAddrs(ctx) {
		t.Fatal("re-check after the host gained 10.9.0.5 and 2001:db8:9::5 did nothing")
	}
	h.notBlocked("10.9.0.5", "2001:db8:9::5")
	h.blocked("10.9.0.4", "10.9.0.6", "2001:db8:9::6")
	enforcesFullReplace(t, "gained", h.fake, h.policy, entries)
	src.set("192.0.2.1", "10.9.0.5", "2001:db8:9::5", "2001:db8:1::1")
	if a.recheckHostAddrs(ctx) {
		t.Error("the same addresses in another order replaced the set")
	}

	// The host loses them: the bans cover them again.
	src.set("192.0.2.1", "2001:db8:1::1")
	if !a.recheckHostAddrs(ctx) {
		t.Fatal("re-check after the host lost 10.9.0.5 did nothing")
	}
	h.blocked("10.9.0.5", "2001:db8:9::5")
	enforcesFullReplace(t, "lost", h.fake, h.policy, entries)

	// A delta arriving after a change rebuilds the whole set instead of
	// filtering only its additions.
	src.set("192.0.2.1", "2001:db8:1::1", "10.9.0.7")
	calls = len(h.fake.Calls())
	if err := a.handle(ctx, client.Update{Version: 2, Add: pfx("203.0.113.9/32")}); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.Calls()[calls:]; len(got) != 1 || got[0].Method != "Replace" {
		t.Errorf("delta after an address change: calls %v, want one Replace", got)
	}
	entries = append(entries, netip.MustParsePrefix("203.0.113.9/32"))
	h.notBlocked("10.9.0.7")
	h.blocked("203.0.113.9", "10.9.0.5")
	enforcesFullReplace(t, "delta after a change", h.fake, h.policy, entries)
	// The next delta, addresses unchanged, is a delta again.
	calls = len(h.fake.Calls())
	if err := a.handle(ctx, client.Update{Version: 3, Remove: pfx("203.0.113.9/32")}); err != nil {
		t.Fatal(err)
	}
	if got := h.fake.Calls()[calls:]; len(got) != 1 || got[0].Method != "Apply" {
		t.Errorf("delta with unchanged addresses: calls %v, want one Apply", got)
	}
	if got := testutil.ToFloat64(a.metrics.hostAddrChanges); got != 3 {
		t.Errorf("rampart_blocklist_agent_host_address_changes_total = %v, want 3", got)
	}
}

// TestHostAddrsNothingEnforcedYet: before the agent enforced anything, an
// address change never makes it load a set (Run never empties the
// firewall on its own).
func TestHostAddrsNothingEnforcedYet(t *testing.T) {
	src := &hostAddrs{}
	src.set("192.0.2.1")
	fake := &firewalltest.Backend{}
	a, err := New(Options{Backend: fake, Server: newFakeServer(), StateDir: t.TempDir(),
		Policy: firewall.Policy{HostAddrs: src.get}})
	if err != nil {
		t.Fatal(err)
	}
	src.set("192.0.2.2")
	if a.recheckHostAddrs(context.Background()) || len(fake.Calls()) != 0 {
		t.Errorf("re-check before anything was enforced: calls %v", fake.Calls())
	}
}

// TestHostAddrsWatcher runs the agent with a short interval and changes
// the addresses under it; only a generous deadline is asserted.
func TestHostAddrsWatcher(t *testing.T) {
	src := &hostAddrs{}
	src.set("192.0.2.1")
	srv := newFakeServer(step{u: client.Update{Version: 1, Full: true, Entries: pfx("10.9.0.0/24")}})
	fake := &firewalltest.Backend{}
	a, err := New(Options{Backend: fake, Server: srv, StateDir: t.TempDir(), NoSocket: true,
		Policy: firewall.Policy{HostAddrs: src.get}, HostAddrsInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	<-srv.done
	wait := func(what string, addr string, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for fake.Contains(netip.MustParseAddr(addr)) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s blocked = %v after 10s, want %v", what, addr, !want, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("start", "10.9.0.5", true)
	src.set("192.0.2.1", "10.9.0.5")
	wait("gained", "10.9.0.5", false)
	src.set("192.0.2.1")
	wait("lost", "10.9.0.5", true)
}

// TestRefusedEntriesReported: an entry broader than the agent accepts is
// counted in the status and the refused-entries gauge, and logged at
// error level with the entry, from a full set and from a delta.
func TestRefusedEntriesReported(t *testing.T) {
	var logs bytes.Buffer
	srv := newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("6.0.0.0/7", "192.0.2.1/32")}},
		step{u: client.Update{Version: 2, Add: pfx("2001::/16")}},
	)
	reg := prometheus.NewRegistry()
	a, err := New(Options{Backend: &firewalltest.Backend{}, Server: srv, StateDir: t.TempDir(), NoSocket: true,
		Policy:   firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Registry: reg, Clock: &fakeClock{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	<-srv.done
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.Refused != 2 {
		t.Errorf("status refused = %d, want 2", st.Refused)
	}
	want := `
# HELP rampart_blocklist_agent_refused_entries Entries of blocklistd's set this agent's policy refuses (broader than it accepts, or invalid): not enforced, nor the narrower bans blocklistd folded into them.
# TYPE rampart_blocklist_agent_refused_entries gauge
rampart_blocklist_agent_refused_entries 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rampart_blocklist_agent_refused_entries"); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"level=ERROR", "6.0.0.0/7: /7 is broader than the policy accepts (limit /8)",
		"2001::/16: /16 is broader than the policy accepts (limit /32)", "allow_broad", "min_prefix_v4"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}
