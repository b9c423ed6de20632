package agent

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// step is one scripted answer of the fake blocklistd.
type step struct {
	u   client.Update
	err error
}

// fakeServer answers Sync from a script, then blocks until the test ends
// the agent; done closes when the script is exhausted.
type fakeServer struct {
	mu    sync.Mutex
	steps []step
	haves []uint64
	done  chan struct{}
	once  sync.Once
}

func newFakeServer(steps ...step) *fakeServer {
	return &fakeServer{steps: steps, done: make(chan struct{})}
}

func (f *fakeServer) Sync(ctx context.Context, have uint64, wait time.Duration) (client.Update, error) {
	f.mu.Lock()
	f.haves = append(f.haves, have)
	if len(f.steps) == 0 {
		f.mu.Unlock()
		f.once.Do(func() { close(f.done) })
		<-ctx.Done()
		return client.Update{}, ctx.Err()
	}
	s := f.steps[0]
	f.steps = f.steps[1:]
	f.mu.Unlock()
	return s.u, s.err
}

func (f *fakeServer) Haves() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.haves)
}

// fakeClock never sleeps: After fires at once and records the delay.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	delays []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delays = append(c.delays, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Delays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.delays)
}

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var errDown = errors.New("dial tcp 192.0.2.1:8443: connect: connection refused")

type harness struct {
	t       *testing.T
	dir     string
	backend firewall.Backend
	fake    *firewalltest.Backend
	server  *fakeServer
	clock   *fakeClock
	policy  firewall.Policy
	agent   *Agent
	reg     *prometheus.Registry
}

func newHarness(t *testing.T, server *fakeServer) *harness {
	t.Helper()
	h := &harness{
		t:      t,
		dir:    t.TempDir(),
		fake:   &firewalltest.Backend{},
		server: server,
		clock:  &fakeClock{now: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)},
		policy: firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }},
		reg:    prometheus.NewRegistry(),
	}
	h.backend = h.fake
	return h
}

// run runs an agent until the fake server's script is exhausted.
func (h *harness) run() error {
	h.t.Helper()
	a, err := New(Options{
		Backend:  h.backend,
		Server:   h.server,
		Policy:   h.policy,
		StateDir: h.dir,
		Backoff:  Backoff{Min: time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0.5 }},
		Clock:    h.clock,
		Registry: h.reg,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	select {
	case <-h.server.done:
		cancel()
		return <-errc
	case err := <-errc:
		cancel()
		return err
	case <-time.After(10 * time.Second):
		cancel()
		h.t.Fatal("agent did not finish the script")
		return nil
	}
}

func (h *harness) blocked(addrs ...string) {
	h.t.Helper()
	for _, a := range addrs {
		if !h.fake.Contains(netip.MustParseAddr(a)) {
			h.t.Errorf("%s is not blocked; firewall holds %v", a, h.fake.Prefixes())
		}
	}
}

func (h *harness) notBlocked(addrs ...string) {
	h.t.Helper()
	for _, a := range addrs {
		if h.fake.Contains(netip.MustParseAddr(a)) {
			h.t.Errorf("%s is blocked; firewall holds %v", a, h.fake.Prefixes())
		}
	}
}

func (h *harness) methods() []string {
	var out []string
	for _, c := range h.fake.Calls() {
		out = append(out, c.Method)
	}
	return out
}

func TestFollowFullThenDeltas(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("192.0.2.7/32", "198.51.100.0/24", "2001:db8::/48")}},
		step{u: client.Update{Version: 2, Add: pfx("203.0.113.9/32"), Remove: pfx("192.0.2.7/32")}},
		step{u: client.Update{Version: 2}}, // long-poll timeout
		step{u: client.Update{Version: 3, Remove: pfx("2001:db8::/48")}},
	))
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	if got, want := h.server.Haves(), []uint64{0, 1, 2, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("versions sent = %v, want %v", got, want)
	}
	if got, want := h.methods(), []string{"Replace", "Apply", "Apply"}; !slices.Equal(got, want) {
		t.Errorf("backend calls = %v, want %v", got, want)
	}
	h.blocked("198.51.100.77", "203.0.113.9")
	h.notBlocked("192.0.2.7", "2001:db8::1")

	snap, err := LoadSnapshot(filepath.Join(h.dir, SnapshotFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := pfx("198.51.100.0/24", "203.0.113.9/32"); snap.Version != 3 || !slices.Equal(snap.Entries, want) {
		t.Errorf("snapshot = v%d %v, want v3 %v", snap.Version, snap.Entries, want)
	}
	st := h.agent.Status()
	if st.Version != 3 || st.Entries != 2 || st.IPv4 != 2 || st.IPv6 != 0 || !st.Reachable || st.Restored {
		t.Errorf("status = %+v", st)
	}
}

func TestServerDownNeverFlushes(t *testing.T) {
	steps := []step{{u: client.Update{Version: 4, Full: true, Entries: pfx("192.0.2.0/28")}}}
	for range 6 {
		steps = append(steps, step{err: errDown})
	}
	h := newHarness(t, newFakeServer(steps...))
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	if got := h.methods(); !slices.Equal(got, []string{"Replace"}) {
		t.Errorf("backend calls = %v, want only the first Replace", got)
	}
	h.blocked("192.0.2.1", "192.0.2.15")
	// Exponential from 1s, capped at 8s, jitter fixed at the middle of
	// the upper half: 3/4 of 1, 2, 4, 8, 8, 8 seconds.
	want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 6 * time.Second, 6 * time.Second}
	if got := h.clock.Delays(); !slices.Equal(got, want) {
		t.Errorf("backoff delays = %v, want %v", got, want)
	}
	for _, v := range h.server.Haves()[1:] {
		if v != 4 {
			t.Errorf("agent asked with version %d after losing blocklistd, want 4", v)
		}
	}
	st, running, err := QueryStatus(context.Background(), h.dir)
	if err != nil || running {
		t.Fatalf("QueryStatus = running %v, %v", running, err)
	}
	if st.Reachable || st.Failures != 6 || st.LastError == "" || st.Version != 4 {
		t.Errorf("status after the server went away = %+v", st)
	}
}

func TestRestartWhileServerDown(t *testing.T) {
	h := newHarness(t, newFakeServer(step{err: errDown}, step{err: errDown}))
	if err := SaveSnapshot(filepath.Join(h.dir, SnapshotFile), Snapshot{Version: 7, Entries: pfx("192.0.2.0/24", "2001:db8:1::/64")}); err != nil {
		t.Fatal(err)
	}
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	h.blocked("192.0.2.200", "2001:db8:1::5")
	if got := h.server.Haves(); !slices.Equal(got, []uint64{7, 7, 7}) {
		t.Errorf("versions sent = %v, want the saved version", got)
	}
	if st := h.agent.Status(); !st.Restored || st.Reachable || st.Version != 7 || st.IPv4 != 1 || st.IPv6 != 1 {
		t.Errorf("status = %+v, want restored and unreachable", st)
	}
}

func TestRestoreThenResync(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 9, Full: true, Entries: pfx("203.0.113.0/24")}},
	))
	if err := SaveSnapshot(filepath.Join(h.dir, SnapshotFile), Snapshot{Version: 7, Entries: pfx("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	if got := h.methods(); !slices.Equal(got, []string{"Replace", "Replace"}) {
		t.Errorf("backend calls = %v", got)
	}
	h.blocked("203.0.113.1")
	h.notBlocked("192.0.2.1")
}

// refuseReplaces fails the first n Replace calls, as pfctl failing at
// boot would; only the agent's Run goroutine calls it.
type refuseReplaces struct {
	*firewalltest.Backend
	n int
}

func (r *refuseReplaces) Replace(ctx context.Context, set *netipx.IPSet) error {
	if r.n > 0 {
		r.n--
		return errors.New("pfctl: Operation not permitted")
	}
	return r.Backend.Replace(ctx, set)
}

// A firewall refusing the saved snapshot at start does not stop the
// agent: it retries the snapshot while blocklistd is unreachable.
func TestRefusedSnapshotRetried(t *testing.T) {
	h := newHarness(t, newFakeServer(step{err: errDown}, step{err: errDown}, step{err: errDown}))
	if err := SaveSnapshot(filepath.Join(h.dir, SnapshotFile), Snapshot{Version: 7, Entries: pfx("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	h.backend = &refuseReplaces{Backend: h.fake, n: 2}
	if err := h.run(); err != nil {
		t.Fatalf("Run = %v; a refused snapshot must be retried, not end the agent", err)
	}
	h.blocked("192.0.2.1")
	// Until the snapshot is enforced the agent holds no version; then it
	// asks with the snapshot's.
	if got, want := h.server.Haves(), []uint64{0, 0, 7, 7}; !slices.Equal(got, want) {
		t.Errorf("versions sent = %v, want %v", got, want)
	}
	if st := h.agent.Status(); !st.Restored || st.Reachable || st.Version != 7 || st.Entries != 1 {
		t.Errorf("status = %+v, want the restored snapshot, blocklistd unreachable", st)
	}
}

// A set from blocklistd supersedes a saved snapshot the firewall refused.
func TestRefusedSnapshotSuperseded(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 9, Full: true, Entries: pfx("203.0.113.0/24")}},
		step{err: errDown},
	))
	if err := SaveSnapshot(filepath.Join(h.dir, SnapshotFile), Snapshot{Version: 7, Entries: pfx("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	h.backend = &refuseReplaces{Backend: h.fake, n: 1}
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	h.blocked("203.0.113.1")
	h.notBlocked("192.0.2.1")
	if got := h.methods(); !slices.Equal(got, []string{"Replace"}) {
		t.Errorf("backend calls that reached the firewall = %v, want only blocklistd's set", got)
	}
	if st := h.agent.Status(); st.Restored || st.Version != 9 {
		t.Errorf("status = %+v", st)
	}
}

func TestDamagedSnapshotWaitsForServer(t *testing.T) {
	h := newHarness(t, newFakeServer(step{err: errDown}))
	if err := os.WriteFile(filepath.Join(h.dir, SnapshotFile), []byte("RBL1 not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	if got := h.methods(); len(got) != 0 {
		t.Errorf("backend calls = %v, want none (the firewall keeps what it has)", got)
	}
	if got := h.server.Haves(); got[0] != 0 {
		t.Errorf("first sync asked for version %d, want a full snapshot", got[0])
	}
}

func TestPolicyProtectsAllowlist(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("10.1.0.0/24", "0.0.0.0/0", "127.0.0.1/32")}},
		step{u: client.Update{Version: 2, Add: pfx("10.1.9.1/32", "::/0")}},
	))
	h.policy.Allow = pfx("10.1.0.5/32", "10.1.9.0/24")
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	h.blocked("10.1.0.4", "10.1.0.6")
	h.notBlocked("10.1.0.5", "10.1.9.1", "127.0.0.1", "8.8.8.8", "2001:db8::1")
	if st := h.agent.Status(); st.Refused == 0 || st.Allowlisted == 0 {
		t.Errorf("status = %+v, want refused and allowlisted counted", st)
	}
}

// flakyApply refuses deltas, as a backend whose kernel state drifted would.
type flakyApply struct{ *firewalltest.Backend }

func (f flakyApply) Apply(ctx context.Context, d firewall.Delta) error {
	return errors.New("netlink: no such file or directory")
}

func TestRefusedDeltaFallsBackToReplace(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("192.0.2.1/32")}},
		step{u: client.Update{Version: 2, Add: pfx("192.0.2.2/32")}},
	))
	h.backend = flakyApply{h.fake}
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	h.blocked("192.0.2.1", "192.0.2.2")
	if got := h.methods(); !slices.Equal(got, []string{"Replace", "Replace"}) {
		t.Errorf("backend calls = %v", got)
	}
}

func TestFailedReplaceKeepsVersion(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("192.0.2.1/32")}},
		step{u: client.Update{Version: 1, Full: true, Entries: pfx("192.0.2.1/32")}},
	))
	h.fake.Err = errors.New("netlink: operation not permitted")
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	if got := h.server.Haves(); !slices.Equal(got, []uint64{0, 0, 0}) {
		t.Errorf("versions sent = %v: a set the firewall refused must be asked for again", got)
	}
	st := h.agent.Status()
	if !st.Reachable || st.Failures != 2 {
		t.Errorf("status = %+v, want reachable with 2 failures", st)
	}
}

func TestStatusSocket(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(step{u: client.Update{Version: 5, Full: true, Entries: pfx("192.0.2.1/32", "2001:db8::1/128")}})
	a, err := New(Options{Backend: &firewalltest.Backend{}, Server: srv, StateDir: dir, ServerName: "https://blocklistd.test:8443",
		BackendName: "pf", Table: "rampart",
		Policy: firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	<-srv.done
	st, running, err := QueryStatus(context.Background(), dir)
	if err != nil || !running {
		t.Fatalf("QueryStatus = running %v, %v", running, err)
	}
	if st.Version != 5 || st.IPv4 != 1 || st.IPv6 != 1 || st.Server != "https://blocklistd.test:8443" || st.PID != os.Getpid() ||
		st.Backend != "pf" || st.Table != "rampart" {
		t.Errorf("live status = %+v", st)
	}
	// A second agent on the same state directory must not start.
	b, _ := New(Options{Backend: &firewalltest.Backend{}, Server: newFakeServer(), StateDir: dir})
	if err := b.Run(ctx); err == nil {
		t.Error("a second agent started on a state directory in use")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st, running, err = QueryStatus(context.Background(), dir)
	if err != nil || running || st.Version != 5 || st.Backend != "pf" {
		t.Errorf("after stop: QueryStatus = %+v, running %v, %v", st, running, err)
	}
	if _, _, err := QueryStatus(context.Background(), t.TempDir()); !errors.Is(err, ErrNoStatus) {
		t.Errorf("empty directory: %v, want ErrNoStatus", err)
	}
}

func TestApplyDelta(t *testing.T) {
	tests := []struct {
		name             string
		cur, add, remove []netip.Prefix
		want             []netip.Prefix
	}{
		{"empty", nil, nil, nil, []netip.Prefix{}},
		{"add to empty", nil, pfx("192.0.2.2/32", "192.0.2.1/32"), nil, pfx("192.0.2.1/32", "192.0.2.2/32")},
		{"add present", pfx("192.0.2.1/32"), pfx("192.0.2.1/32"), nil, pfx("192.0.2.1/32")},
		{"remove absent", pfx("192.0.2.1/32"), nil, pfx("192.0.2.9/32"), pfx("192.0.2.1/32")},
		{"interleave", pfx("10.0.0.1/32", "10.0.0.5/32", "2001:db8::/32"), pfx("10.0.0.3/32", "::/0"), pfx("10.0.0.5/32"),
			pfx("10.0.0.1/32", "10.0.0.3/32", "::/0", "2001:db8::/32")},
		{"same address other length", pfx("10.0.0.0/24"), pfx("10.0.0.0/16"), pfx("10.0.0.0/24"), pfx("10.0.0.0/16")},
		{"removed and added stays", pfx("10.0.0.1/32"), pfx("10.0.0.2/32", "10.0.0.1/32"), pfx("10.0.0.1/32", "10.0.0.2/32"), pfx("10.0.0.1/32", "10.0.0.2/32")},
		{"removal matches exactly", pfx("10.77.0.92/30", "10.77.0.94/32"), nil, pfx("10.77.0.92/30"), pfx("10.77.0.94/32")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := slices.Clone(tt.cur)
			got := applyDelta(cur, tt.add, tt.remove)
			if !slices.Equal(got, tt.want) {
				t.Errorf("applyDelta = %v, want %v", got, tt.want)
			}
			if !slices.Equal(cur, tt.cur) {
				t.Errorf("applyDelta modified its input")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		rand     float64
		min, max time.Duration
		want     []time.Duration
	}{
		{"low jitter", 0, time.Second, 4 * time.Second, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}},
		{"high jitter", 0.999999, time.Second, 4 * time.Second, []time.Duration{999999500 * time.Nanosecond, 1999999 * time.Microsecond, 3999998 * time.Microsecond, 3999998 * time.Microsecond}},
		{"max below min", 0, 2 * time.Second, time.Second, []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Backoff{Min: tt.min, Max: tt.max, Rand: func() float64 { return tt.rand }}
			for i, want := range tt.want {
				if got := b.Next(); got != want {
					t.Errorf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got := b.Next(); got != tt.want[0] {
				t.Errorf("after Reset: %v, want %v", got, tt.want[0])
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), SnapshotFile)
	if _, err := LoadSnapshot(path, 0); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("missing snapshot: %v", err)
	}
	want := Snapshot{Version: 1 << 40, Entries: pfx("192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32")}
	if err := SaveSnapshot(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSnapshot(path, 0)
	if err != nil || got.Version != want.Version || !slices.Equal(got.Entries, want.Entries) {
		t.Fatalf("LoadSnapshot = %+v, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := LoadSnapshot(path, 2); err == nil {
		t.Error("a snapshot above maxEntries was accepted")
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, newFakeServer(
		step{u: client.Update{Version: 3, Full: true, Entries: pfx("192.0.2.1/32", "192.0.2.2/32", "2001:db8::/64")}},
		step{u: client.Update{Version: 4, Add: pfx("192.0.2.3/32")}},
		step{err: errDown},
	))
	if err := h.run(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP rampart_blocklist_agent_entries Entries in the blocklistd set this agent enforces, by address family.
# TYPE rampart_blocklist_agent_entries gauge
rampart_blocklist_agent_entries{family="ipv4"} 3
rampart_blocklist_agent_entries{family="ipv6"} 1
# HELP rampart_blocklist_agent_server_reachable 1 when the last attempt to reach blocklistd worked.
# TYPE rampart_blocklist_agent_server_reachable gauge
rampart_blocklist_agent_server_reachable 0
# HELP rampart_blocklist_agent_sync_errors_total Failed attempts to sync with blocklistd.
# TYPE rampart_blocklist_agent_sync_errors_total counter
rampart_blocklist_agent_sync_errors_total 1
# HELP rampart_blocklist_agent_version blocklistd version this agent enforces.
# TYPE rampart_blocklist_agent_version gauge
rampart_blocklist_agent_version 4
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want),
		"rampart_blocklist_agent_entries", "rampart_blocklist_agent_server_reachable",
		"rampart_blocklist_agent_sync_errors_total", "rampart_blocklist_agent_version"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(h.reg, "rampart_blocklist_agent_apply_duration_seconds", "rampart_blocklist_agent_sync_lag_seconds")
	if err != nil || n != 3 { // replace, apply, lag
		t.Errorf("apply duration and lag series = %d, %v; want 3", n, err)
	}
}
