package bastion_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/test/testenv"
)

// Killing the proxy process (SIGKILL) mid-session leaves a recording that
// asciinema plays, holding everything shown more than a second before the
// kill; `bastion sessions` reports it as interrupted.
func TestRecordedCrashLeavesPlayableFile(t *testing.T) {
	w := recNewWorld(t, nil) // for the target and keys; the proxy under test is a child
	cfg := w.cfg
	cfg.Dir = filepath.Join(t.TempDir(), "recordings")
	cfg.NoSync = false
	addr, child := recStartChild(t, cfg)

	ssh := testenv.Binary(t, "ssh")
	cmd := "TERM=screen " + recShellQuote(append([]string{ssh, "-t"}, w.sshArgs(addr)...)...) + " 'for i in $(seq 1 100000); do echo tick-$i; sleep 0.05; done'"
	m := recNewTmux(t, 80, 24, cmd+"; sleep 600")
	tick := regexp.MustCompile(`tick-(\d+)`)
	last := func(s string) int {
		n := 0
		for _, mm := range tick.FindAllStringSubmatch(s, -1) {
			v, _ := strconv.Atoi(mm[1])
			n = max(n, v)
		}
		return n
	}
	screen := m.waitScreen("ticks", func(s string) bool { return last(s) >= 20 })
	seen := last(screen)
	// Everything on screen now must be on disk one flush interval later;
	// wait twice that, then kill the proxy outright.
	time.Sleep(2 * time.Second)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	casts := recCasts(t, cfg.Dir)
	if len(casts) != 1 {
		t.Fatalf("recordings: %v", casts)
	}
	out, err := recAsciinemaCat(t, casts[0])
	if err != nil {
		t.Fatalf("asciinema cat of the interrupted recording: %v\n%s", err, recTail(out, 500))
	}
	if !strings.Contains(out, "tick-"+strconv.Itoa(seen)+"\r\n") {
		t.Fatalf("recording lacks tick-%d, shown 2s before the kill; it ends:\n%s", seen, recTail(out, 300))
	}
	b, _ := os.ReadFile(casts[0])
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("recording does not end on a whole line")
	}
	recs, err := recorded.List(cfg.Dir)
	if err != nil || len(recs) != 1 || recs[0].State != recorded.Interrupted {
		t.Errorf("List: %+v, %v; want one interrupted recording", recs, err)
	}
}
