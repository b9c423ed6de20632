package firewall_test

// The backends' half of issue 12's invariant: after any sequence of
// deltas (nested and overlapping prefixes of both families, a prefix
// added and removed in one delta, duplicates), a full replace now and
// then, and a restarted backend that reloads its cache from the kernel,
// the set the backend enforces equals firewall.Delta.ApplyTo of the
// previous one: exactly what a full replace of that set installs. The
// kernel's set is read back with `nft -j`; the pf backend runs against
// the fake pfctl. A failing seed is shrunk to the shortest failing
// sequence.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/firewall/pf"
	"github.com/rampart-sec/rampart/test/testenv"
)

// deltaStep is a delta, or (Replace) a full replace with Add, or
// (Restart) a new backend instance before the delta.
type deltaStep struct {
	firewall.Delta
	Replace, Restart bool
}

func (s deltaStep) String() string {
	var b strings.Builder
	if s.Restart {
		b.WriteString("restart; ")
	}
	if s.Replace {
		fmt.Fprintf(&b, "replace %v", s.Add)
		return b.String()
	}
	fmt.Fprintf(&b, "apply -%v +%v", s.Remove, s.Add)
	return b.String()
}

func genDeltaSteps(seed uint64, n int) []deltaStep {
	g := firewalltest.NewPrefixes(seed)
	steps := make([]deltaStep, n)
	for i := range steps {
		steps[i] = deltaStep{Delta: g.Delta()}
		switch g.Rand().IntN(40) {
		case 0:
			steps[i] = deltaStep{Replace: true, Delta: firewall.Delta{Add: g.List(8)}}
		case 1:
			steps[i].Restart = true
		}
	}
	return steps
}

// deltaBackend makes a fresh backend (run numbers the replays) and reads
// its set back without it.
type deltaBackend struct {
	name string
	new  func(t testing.TB, run int) (fresh func() firewall.Backend, read func() (*netipx.IPSet, error))
}

// runDeltaSteps replays steps from an empty set and returns the number of
// the first step after which the backend differs from the reference, or 0.
func runDeltaSteps(t testing.TB, be deltaBackend, run int, steps []deltaStep, log *[]string) int {
	ctx := context.Background()
	fresh, read := be.new(t, run)
	b := fresh()
	want := &netipx.IPSet{}
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if log != nil {
			*log = append(*log, fmt.Sprintf("%3d. %s", i+1, s))
		}
		if s.Restart {
			b = fresh()
		}
		var err error
		if s.Replace {
			want, err = s.Delta.ApplyTo(nil)
			if err == nil {
				err = b.Replace(ctx, want)
			}
		} else {
			want, err = s.Delta.ApplyTo(want)
			if err == nil {
				err = b.Apply(ctx, s.Delta)
			}
		}
		if err == nil {
			var got *netipx.IPSet
			if got, err = read(); err == nil {
				if ok, diff := firewalltest.Equal(got, want); !ok {
					err = fmt.Errorf("%s enforces %v: %s", be.name, got.Prefixes(), diff)
				}
			}
		}
		if err != nil {
			if log != nil {
				*log = append(*log, "  -> "+err.Error())
			}
			return i + 1
		}
	}
	return 0
}

func checkDeltaProperty(t *testing.T, be deltaBackend, seeds, steps int) {
	run := 0
	total := 0
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		ops := genDeltaSteps(seed, steps)
		run++
		if n := runDeltaSteps(t, be, run, ops, nil); n > 0 {
			short := firewalltest.Shrink(ops, func(ops []deltaStep) int { run++; return runDeltaSteps(t, be, run, ops, nil) })
			var log []string
			run++
			runDeltaSteps(t, be, run, short, &log)
			t.Fatalf("%s: seed %d fails at step %d; shortest failing sequence, %d steps:\n%s", be.name, seed, n, len(short), strings.Join(log, "\n"))
		}
		total += steps
	}
	t.Logf("%s: %d seeds x %d steps = %d deltas checked against Delta.ApplyTo", be.name, seeds, steps, total)
}

func nftDeltaBackend(t testing.TB) deltaBackend {
	testenv.Binary(t, "nft")
	h := testenv.NewHost(t)
	return deltaBackend{name: "nftables", new: func(t testing.TB, run int) (func() firewall.Backend, func() (*netipx.IPSet, error)) {
		table := fmt.Sprintf("delta%d", run)
		fresh := func() firewall.Backend {
			b, err := nftables.New(nftables.Options{NetNS: h.Path(), Table: table})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		t.Cleanup(func() { fresh().Remove(context.Background()) })
		return fresh, func() (*netipx.IPSet, error) { return nftJSONSet(h, table) }
	}}
}

func pfDeltaBackend(t testing.TB) deltaBackend {
	fake := fakePfctl(t)
	return deltaBackend{name: "pf", new: func(t testing.TB, run int) (func() firewall.Backend, func() (*netipx.IPSet, error)) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "tables"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "tables", "rampart"), "")
		// The fake finds its tables through the environment pfctl
		// inherits (a wrapper script would double the processes).
		os.Setenv("FAKEPFCTL_DIR", dir)
		fresh := func() firewall.Backend {
			b, err := pf.New(pf.Options{Pfctl: fake, TempDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// What pf would enforce: the fake's table file, parsed as
		// `pfctl -T show` output.
		return fresh, func() (*netipx.IPSet, error) {
			data, err := os.ReadFile(filepath.Join(dir, "tables", "rampart"))
			if err != nil {
				return nil, err
			}
			return pf.ParseShow(data)
		}
	}}
}

func TestDeltaPropertyNftables(t *testing.T) {
	checkDeltaProperty(t, nftDeltaBackend(t), 4, 400)
}

func TestDeltaPropertyPF(t *testing.T) {
	t.Setenv("FAKEPFCTL_DIR", "") // restored after the test
	checkDeltaProperty(t, pfDeltaBackend(t), 2, 100)
}

// FuzzDeltaNftables draws the sequence from the fuzzer's seed, against the
// kernel: go test -fuzz FuzzDeltaNftables -run '^$' ./test/firewall/
func FuzzDeltaNftables(f *testing.F) {
	f.Add(uint64(1), uint16(99))
	be := nftDeltaBackend(f)
	run := 0
	f.Fuzz(func(t *testing.T, seed uint64, n uint16) {
		// At most 100 steps: the fuzzing engine takes an input that runs
		// for seconds for a hang.
		ops := genDeltaSteps(seed, int(n%100)+1)
		run++
		if k := runDeltaSteps(t, be, run, ops, nil); k > 0 {
			short := firewalltest.Shrink(ops, func(ops []deltaStep) int { run++; return runDeltaSteps(t, be, run, ops, nil) })
			var log []string
			run++
			runDeltaSteps(t, be, run, short, &log)
			t.Fatalf("seed %d fails at step %d; shortest failing sequence:\n%s", seed, k, strings.Join(log, "\n"))
		}
	})
}

// nftJSONSet reads every set of table with `nft -j`, as addresses.
func nftJSONSet(h *testenv.Host, table string) (*netipx.IPSet, error) {
	out, err := h.Run("nft", "-j", "list", "table", "inet", table)
	if err != nil {
		return nil, err
	}
	return firewalltest.NftSets([]byte(out))
}
