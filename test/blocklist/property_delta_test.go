package blocklist_test

// The delta property (issue 12): after every step of a random sequence,
// the set an agent enforces equals Policy.Build of the entries blocklistd
// publishes, which is what a fresh full replace installs. blocklistd runs
// in this process on a real bbolt store behind real mTLS; the agent is
// the real agent code following it with the real nftables backend in a
// network namespace (the kernel's set read back with `nft -j`), with the
// pf backend through the fake pfctl, or with the in-memory fake. Each
// step is checked on both sides: the published set against a reference
// model of decisions and allow entries, the firewall against the
// published set.
//
// Seeds and lengths: PROPERTY_SEEDS and PROPERTY_STEPS override them; a
// failing seed is shrunk and the shortest failing sequence printed.
// BenchmarkPropertyDeltaNftables runs seed after seed for longer.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/firewall/pf"
	"github.com/rampart-sec/rampart/test/testenv"
)

// propPolicy is the agents' policy: a local allowlist inside the
// generated prefixes, and no host addresses (the test process's are not
// the namespace's).
var propPolicy = firewall.Policy{
	Allow:     []netip.Prefix{netip.MustParsePrefix("10.78.1.88/30"), netip.MustParsePrefix("2001:db8:1:1::/64")},
	HostAddrs: func() ([]netip.Addr, error) { return nil, nil },
}

// propBackend is the firewall under test: a fresh backend per replay, and
// how to read back what it enforces independently of the agent.
type propBackend struct {
	name string
	// new sets up replay run: fresh returns a backend instance (a new one
	// on the same kernel table after an agent restart), read the set.
	new func(t testing.TB, run int) (fresh func() firewall.Backend, read func() (*netipx.IPSet, error))
}

func nftablesBackend(t testing.TB) propBackend {
	testenv.Binary(t, "nft")
	h := testenv.NewHost(t)
	return propBackend{name: "nftables", new: func(t testing.TB, run int) (func() firewall.Backend, func() (*netipx.IPSet, error)) {
		table := fmt.Sprintf("prop%d", run)
		fresh := func() firewall.Backend {
			b, err := nftables.New(nftables.Options{NetNS: h.Path(), Table: table})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		t.Cleanup(func() { fresh().Remove(context.Background()) })
		return fresh, func() (*netipx.IPSet, error) { return nftSet(h, table) }
	}}
}

// nftSet reads the four sets of table with `nft -j`, the second opinion.
func nftSet(h *testenv.Host, table string) (*netipx.IPSet, error) {
	out, err := h.Run("nft", "-j", "list", "table", "inet", table)
	if err != nil {
		if strings.Contains(out, "No such file or directory") {
			return &netipx.IPSet{}, nil // nothing installed yet
		}
		return nil, err
	}
	return firewalltest.NftSets([]byte(out))
}

func pfBackend(t testing.TB) propBackend {
	fake := filepath.Join(t.TempDir(), "fakepfctl")
	build := exec.Command("go", "build", "-o", fake, "./firewall/pf/testdata/fakepfctl")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake pfctl: %v\n%s", err, out)
	}
	return propBackend{name: "pf", new: func(t testing.TB, run int) (func() firewall.Backend, func() (*netipx.IPSet, error)) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "tables"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFleetFile(t, filepath.Join(dir, "tables", "rampart"), "")
		pfctl := filepath.Join(dir, "pfctl")
		if err := os.WriteFile(pfctl, []byte(fmt.Sprintf("#!/bin/sh\nFAKEPFCTL_DIR=%s exec %s \"$@\"\n", dir, fake)), 0o755); err != nil {
			t.Fatal(err)
		}
		fresh := func() firewall.Backend {
			b, err := pf.New(pf.Options{Pfctl: pfctl, TempDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		return fresh, func() (*netipx.IPSet, error) {
			out, err := exec.Command(pfctl, "-t", "rampart", "-T", "show").Output()
			if err != nil {
				return nil, err
			}
			return pf.ParseShow(out)
		}
	}}
}

func memoryBackend() propBackend {
	return propBackend{name: "memory", new: func(t testing.TB, run int) (func() firewall.Backend, func() (*netipx.IPSet, error)) {
		b := &firewalltest.Backend{} // the "kernel": one per replay
		return func() firewall.Backend { return b }, func() (*netipx.IPSet, error) { return b.Current(context.Background()) }
	}}
}

// countingBackend counts what the agent asked of the backend; a refused
// delta would make the agent fall back to a full replace and hide a delta
// bug, so it is a failure of its own.
type countingBackend struct {
	firewall.Backend
	replaces, applies atomic.Int64
	mu                sync.Mutex
	applyErr          error
}

func (c *countingBackend) Replace(ctx context.Context, s *netipx.IPSet) error {
	c.replaces.Add(1)
	return c.Backend.Replace(ctx, s)
}

func (c *countingBackend) Apply(ctx context.Context, d firewall.Delta) error {
	c.applies.Add(1)
	err := c.Backend.Apply(ctx, d)
	if err != nil {
		c.mu.Lock()
		c.applyErr = fmt.Errorf("Apply(+%v -%v): %w", d.Add, d.Remove, err)
		c.mu.Unlock()
	}
	return err
}

// propRig holds what every replay shares: certificates and the backend
// factory.
type propRig struct {
	t    testing.TB
	pki  serverPKI
	be   propBackend
	runs int
	// totals over the replays that passed, for the report
	steps, changes, deltas, replaces int64
}

func newPropRig(t testing.TB, be propBackend) *propRig {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := server.WriteDevCerts(dir, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return &propRig{t: t, pki: serverPKI{dir: dir}, be: be}
}

func (r *propRig) client(name, url string) *client.Client {
	cert, err := tls.LoadX509KeyPair(r.pki.file(name+".pem"), r.pki.file(name+"-key.pem"))
	if err != nil {
		r.t.Fatal(err)
	}
	pool, err := propPool(r.pki.file("ca.pem"))
	if err != nil {
		r.t.Fatal(err)
	}
	c, err := client.New(client.Config{URL: url, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// run replays ops on a fresh blocklistd, agent and backend. It returns
// the number of the step after which an invariant broke (0: none) and
// what broke; log, when set, receives every step.
func (r *propRig) run(ops []propOp, log *[]string) (int, string) {
	t := r.t
	r.runs++
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The store's fsyncs would dominate the run; a tmpfs keeps bbolt's
	// code path and drops the disk wait.
	tmp := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		tmp = "/dev/shm"
	}
	dir, err := os.MkdirTemp(tmp, "rampart-prop-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "blocklistd.db"))
	if err != nil {
		t.Fatal(err)
	}
	model := newPropModel()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.New(ctx, st, server.Config{Now: func() time.Time { return model.now }}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.TLSConfig(r.pki.file("blocklistd.pem"), r.pki.file("blocklistd-key.pem"), r.pki.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	// No srv.Run: the test applies every change itself (expiries
	// included) and calls CatchUp, so a replay is deterministic.
	go func() { defer wg.Done(); server.Serve(ctx, ln, srv.Handler(), tc, quiet) }()
	url := "https://" + ln.Addr().String()

	fresh, read := r.be.new(t, r.runs)
	gate := &syncGate{Syncer: r.client("agent", url)}
	var be *countingBackend
	var ag *agent.Agent
	var agentWG sync.WaitGroup
	stopAgent := func() {}
	startAgent := func() {
		if be != nil {
			r.deltas += be.applies.Load()
			r.replaces += be.replaces.Load()
		}
		be = &countingBackend{Backend: fresh()}
		var err error
		ag, err = agent.New(agent.Options{
			Backend: be, Server: gate, StateDir: filepath.Join(dir, "agent"),
			Policy: propPolicy, Wait: 10 * time.Second, NoSocket: true,
			Backoff: agent.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(ctx)
		agentWG.Add(1)
		go func() { defer agentWG.Done(); ag.Run(actx) }()
		stopAgent = func() { acancel(); agentWG.Wait() }
	}
	startAgent()
	defer func() {
		stopAgent()
		cancel()
		wg.Wait()
		st.Close()
	}()
	ref := r.client("agent", url)

	fail := func(i int, format string, args ...any) (int, string) {
		msg := fmt.Sprintf(format, args...)
		if log != nil {
			*log = append(*log, "  -> "+msg)
		}
		return i, msg
	}
	var checked uint64     // the version last compared
	var checkedCalls int64 // backend calls at that moment
	for i := 0; i <= len(ops); i++ {
		if i > 0 {
			op := ops[i-1]
			if log != nil {
				*log = append(*log, fmt.Sprintf("%3d. %s", i, op))
			}
			apply := func(op propOp) {
				if muts := model.mutations(op); len(muts) > 0 {
					if _, err := st.Apply(ctx, muts); err != nil {
						t.Fatal(err)
					}
					if err := srv.CatchUp(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			switch op.Kind {
			case "restart":
				// The agent restarts with a new backend instance: it
				// enforces its saved snapshot, reloads the backend's
				// view from the kernel and follows again.
				stopAgent()
				startAgent()
				checked, checkedCalls = 0, 0 // same version, new process: check it
			case "burst":
				// Several changes while the agent waits: it gets one
				// delta folded over all of them.
				gate.hold()
				for _, sub := range op.Sub {
					apply(sub)
				}
				gate.release()
			default:
				apply(op)
			}
		}
		want := srv.Version()
		deadline := time.Now().Add(15 * time.Second)
		for ag.Status().Version != want {
			if time.Now().After(deadline) {
				s := ag.Status()
				return fail(i, "the agent did not reach version %d within 15s: at %d, last error %q", want, s.Version, s.LastError)
			}
			time.Sleep(200 * time.Microsecond)
		}
		calls := be.applies.Load() + be.replaces.Load()
		if want == checked {
			// Nothing published changed: the firewall must be untouched
			// since the last comparison (no need to read it again).
			if calls != checkedCalls {
				return fail(i, "the agent changed the firewall (%d calls) although the published set did not change", calls-checkedCalls)
			}
			continue
		}
		checked, checkedCalls = want, calls
		r.changes++
		be.mu.Lock()
		applyErr := be.applyErr
		be.mu.Unlock()
		if applyErr != nil {
			return fail(i, "the backend refused a delta (the agent fell back to a full replace): %v", applyErr)
		}
		u, err := ref.Sync(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if u.Version != want {
			t.Fatalf("step %d: full sync at version %d, want %d", i, u.Version, want)
		}
		if msg := checkPublished(model, u.Entries); msg != "" {
			return fail(i, "blocklistd: %s", msg)
		}
		full, stats, err := propPolicy.Build(u.Entries)
		if err != nil {
			t.Fatal(err)
		}
		// What `blocklist-agent status` shows must match too.
		if s := ag.Status(); s.Entries != len(u.Entries) || s.Refused != stats.Refused || s.Allowlisted != stats.Allowlisted {
			return fail(i, "agent status shows %d entries, %d refused, %d allowlisted; a full replace of the published entries gives %d, %d, %d",
				s.Entries, s.Refused, s.Allowlisted, len(u.Entries), stats.Refused, stats.Allowlisted)
		}
		got, err := read()
		if err != nil {
			t.Fatalf("step %d: read the %s set: %v", i, r.be.name, err)
		}
		if ok, diff := firewalltest.Equal(got, full); !ok {
			return fail(i, "%s enforces what a full replace of the published entries would not: %s (published %v)", r.be.name, diff, u.Entries)
		}
	}
	r.steps += int64(len(ops))
	r.deltas += be.applies.Load()
	r.replaces += be.replaces.Load()
	return 0, ""
}

// syncGate holds the agent's next sync request while a burst of changes
// is made.
type syncGate struct {
	agent.Syncer
	mu   sync.Mutex
	held chan struct{}
}

func (g *syncGate) hold() {
	g.mu.Lock()
	g.held = make(chan struct{})
	g.mu.Unlock()
}

func (g *syncGate) release() {
	g.mu.Lock()
	close(g.held)
	g.held = nil
	g.mu.Unlock()
}

func (g *syncGate) Sync(ctx context.Context, have uint64, wait time.Duration) (client.Update, error) {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return client.Update{}, ctx.Err()
		}
	}
	return g.Syncer.Sync(ctx, have, wait)
}

// checkPublished compares blocklistd's entries with the model: the union
// of the decisions minus the union of the allow entries, as prefixes that
// never overlap.
func checkPublished(m *propModel, entries []netip.Prefix) string {
	var want, got netipx.IPSetBuilder
	for _, d := range m.decisions {
		want.AddPrefix(d.Prefix)
	}
	for p := range m.allow {
		want.RemovePrefix(p)
	}
	var seen netipx.IPSetBuilder
	for _, p := range entries {
		s, _ := seen.IPSet()
		if s.OverlapsPrefix(p) {
			return fmt.Sprintf("published entries overlap at %v: %v", p, entries)
		}
		seen.AddPrefix(p)
		got.AddPrefix(p)
	}
	w, _ := want.IPSet()
	g, _ := got.IPSet()
	if ok, diff := firewalltest.Equal(g, w); !ok {
		return "published set differs from the decisions minus the allowlist: " + diff
	}
	return ""
}

// propCheck runs seeds seeds of steps steps each and, on a failure,
// shrinks the sequence and fails with it.
func propCheck(t *testing.T, be propBackend, seeds, steps int) {
	seeds = envInt(t, "PROPERTY_SEEDS", seeds)
	steps = envInt(t, "PROPERTY_STEPS", steps)
	first := uint64(envInt(t, "PROPERTY_FIRST_SEED", 1))
	r := newPropRig(t, be)
	start := time.Now()
	for seed := first; seed < first+uint64(seeds); seed++ {
		ops := genOps(seed, steps)
		if n, msg := r.run(ops, nil); n > 0 {
			t.Logf("seed %d fails at step %d: %s; shrinking", seed, n, msg)
			short := firewalltest.Shrink(ops, func(ops []propOp) int { n, _ := r.run(ops, nil); return n })
			var log []string
			r.run(short, &log)
			t.Fatalf("%s: seed %d (PROPERTY_FIRST_SEED=%d PROPERTY_SEEDS=1 PROPERTY_STEPS=%d) fails; shortest failing sequence, %d steps:\n%s",
				be.name, seed, seed, steps, len(short), strings.Join(log, "\n"))
		}
	}
	t.Logf("%s: %d seeds from %d x %d steps: %d steps, %d of them changed the published set and were checked against a full replace; the agent applied %d deltas and %d full replaces; %v",
		be.name, seeds, first, steps, r.steps, r.changes, r.deltas, r.replaces, time.Since(start).Round(time.Millisecond))
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

func TestPropertyDeltaNftables(t *testing.T) {
	propCheck(t, nftablesBackend(t), 8, 300)
}

func TestPropertyDeltaPF(t *testing.T) {
	seeds := 2
	if testing.Short() {
		seeds = 1
	}
	propCheck(t, pfBackend(t), seeds, 200)
}

// TestPropertyDeltaMemory needs no kernel and no root: blocklistd and the
// agent against the in-memory backend, so `make unit` covers it too.
func TestPropertyDeltaMemory(t *testing.T) {
	seeds := 5
	if testing.Short() {
		seeds = 3
	}
	propCheck(t, memoryBackend(), seeds, 300)
}

// BenchmarkPropertyDeltaNftables runs b.N seeds of 500 steps against the
// kernel (go test -bench PropertyDelta -benchtime 20x ./test/blocklist/).
func BenchmarkPropertyDeltaNftables(b *testing.B) {
	r := newPropRig(b, nftablesBackend(b))
	for i := range b.N {
		seed := uint64(1000 + i)
		if n, msg := r.run(genOps(seed, 500), nil); n > 0 {
			b.Fatalf("seed %d fails at step %d: %s (rerun with PROPERTY_FIRST_SEED=%d PROPERTY_SEEDS=1 PROPERTY_STEPS=500 go test -run TestPropertyDeltaNftables to shrink it)", seed, n, msg, seed)
		}
	}
	b.ReportMetric(float64(r.steps)/b.Elapsed().Seconds(), "steps/s")
}

func propPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return pool, nil
}
