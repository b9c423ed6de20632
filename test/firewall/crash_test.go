package firewall_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/test/testenv"
)

// randomList writes n random IPv4 addresses, n/20 IPv6 addresses and
// n/100 prefixes drawn from rng.
func randomList(t testing.TB, path string, rng *rand.Rand, n int) string {
	t.Helper()
	var b strings.Builder
	b.Grow(n * 16)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d.%d.%d.%d\n", 11+rng.IntN(212), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	for i := 0; i < n/20; i++ {
		fmt.Fprintf(&b, "2001:db8:%x:%x::%x\n", rng.IntN(1<<16), rng.IntN(1<<16), 1+rng.IntN(1<<16-1))
	}
	for i := 0; i < n/100; i++ {
		bits := []int{16, 20, 24}[rng.IntN(3)]
		a := uint32(11+rng.IntN(212))<<24 | rng.Uint32()&0xffffff
		a &^= 1<<(32-bits) - 1
		fmt.Fprintf(&b, "%d.%d.%d.%d/%d\n", a>>24, a>>16&255, a>>8&255, a&255, bits)
	}
	return writeFile(t, path, b.String())
}

// TestCrashMidReplace SIGKILLs blocklist-agent apply at random moments
// of a full replace and checks that the kernel then enforces exactly the
// old set or exactly the new one: never a mix, never nothing.
func TestCrashMidReplace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Binary(t, "nft")
	bin := agent(t)
	h := testenv.NewHost(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	lists := []string{
		randomList(t, filepath.Join(dir, "a.txt"), rng, n),
		randomList(t, filepath.Join(dir, "b.txt"), rng, n),
	}
	apply := func(list string) *exec.Cmd {
		return exec.Command(bin, "apply", "--netns", h.Path(), "--file", list)
	}
	// Uninterrupted runs give the two sets and the time a replace takes.
	var sets [2]*netipx.IPSet
	var took time.Duration
	for i, l := range lists {
		start := time.Now()
		if out, err := apply(l).CombinedOutput(); err != nil {
			t.Fatalf("apply %s: %v\n%s", l, err, out)
		}
		took = max(took, time.Since(start))
		sets[i] = current(t, h)
		if len(sets[i].Ranges()) < n {
			t.Fatalf("set %d holds only %d ranges", i, len(sets[i].Ranges()))
		}
	}
	installed := 1 // b was applied last
	outcomes := map[string]int{}
	window := took
	for round := 0; round < 8; round++ {
		next := 1 - installed
		cmd := apply(lists[next])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Spread the kills over the run, parsing and sending alike; a run
		// that finished first narrows the window (the machine got faster).
		time.Sleep(time.Duration(rng.Int64N(int64(window) + 1)))
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err == nil {
			window /= 2
		}
		got := current(t, h)
		switch {
		case got.Equal(sets[next]):
			installed = next
			outcomes[fmt.Sprintf("new (exit %v)", err)]++
		case got.Equal(sets[installed]):
			outcomes[fmt.Sprintf("old (exit %v)", err)]++
		default:
			t.Fatalf("round %d: killed apply left %d ranges, neither the old set (%d) nor the new one (%d)",
				round, len(got.Ranges()), len(sets[installed].Ranges()), len(sets[next].Ranges()))
		}
	}
	t.Logf("outcomes: %v (an uninterrupted replace took %v)", outcomes, took)
	// nft agrees with the library about the final state.
	out := h.MustRun("nft", "list", "set", "inet", "rampart", "addr6")
	if strings.Count(out, ",")+1 < n/20/2 {
		t.Errorf("nft lists a short addr6 set:\n%.500s", out)
	}
}
