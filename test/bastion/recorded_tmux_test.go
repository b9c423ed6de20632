package bastion_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
	"github.com/rampart-sec/rampart/test/testenv"
)

// An interactive session driven through tmux is recorded exactly as shown:
// playing the recording with `asciinema play` in a terminal of the same
// size draws the same screen the user saw. A resize is recorded as an "r"
// event.
func TestRecordedInteractiveTmux(t *testing.T) {
	w := recNewWorld(t, func(c *recProxyConfig) { c.RecordInput = true })
	ssh := testenv.Binary(t, "ssh")
	cmd := "TERM=screen " + recShellQuote(append([]string{ssh, "-t"}, w.sshArgs(w.addr)...)...)
	m := recNewTmux(t, 100, 30, cmd)
	m.waitScreen("the target's prompt", func(s string) bool { return strings.HasSuffix(s, "#") || strings.HasSuffix(s, "$") })
	m.run("send-keys", "-t", "rec", `printf 'line-%s\n' one two three; printf '\033[1mbold\033[0m tab\there\n'; stty -onlcr; printf 'stair\nstep\r\n'; stty onlcr; echo 'done'-marker`, "Enter")
	shown := m.waitScreen("the command's output", func(s string) bool {
		return strings.Contains(s, "\ndone-marker\n") && (strings.HasSuffix(s, "#") || strings.HasSuffix(s, "$"))
	})
	// A bare line feed (onlcr off) moves down without returning: a proxy
	// that rewrote "\n" would show a different screen than it recorded.
	for _, want := range []string{"line-one", "line-three", "\x1b[1mbold\x1b[0m", " tab        here", "stair\n     step"} {
		if !strings.Contains(shown, want) {
			t.Fatalf("screen lacks %q:\n%s", want, shown)
		}
	}

	// The recording is flushed within a second; play it (asciinema play)
	// in a terminal of the same size until the screens match.
	casts := recCasts(t, w.cfg.Dir)
	if len(casts) != 1 {
		t.Fatalf("recordings: %v", casts)
	}
	// The screen can be ready before the writer's first periodic flush;
	// wait for it (the writer promises one at least every second).
	recWaitFor(t, "the recording to be flushed", 5*time.Second, func() bool {
		b, err := os.ReadFile(casts[0])
		return err == nil && strings.Contains(string(b), "done-marker")
	})
	var replayed string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r := recNewTmux(t, 100, 30, recShellQuote(testenv.Binary(t, "asciinema"), "play", "--idle-time-limit", "0.05", "--speed", "20", casts[0])+"; sleep 600")
		r.waitScreen("the replay", func(s string) bool { return strings.Contains(s, "#") || strings.Contains(s, "$") })
		time.Sleep(200 * time.Millisecond)
		replayed = r.screen()
		if replayed == shown {
			break
		}
	}
	if replayed != shown {
		t.Fatalf("replayed screen differs from the one shown.\nshown:\n%s\nreplayed:\n%s", shown, replayed)
	}

	m.run("resize-window", "-t", "rec", "-x", "90", "-y", "25")
	m.waitScreen("the resize to reach the target", func(string) bool { return true })
	m.run("send-keys", "-t", "rec", "stty size", "Enter")
	m.waitScreen("stty size", func(s string) bool { return strings.Contains(s, "25 90") })
	m.run("send-keys", "-t", "rec", "exit", "Enter")
	recWaitFor(t, "the session's end", 20*time.Second, func() bool { return len(w.audit.find("recorded.end")) == 1 })

	f, err := os.Open(casts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Header.Width != 100 || rd.Header.Height != 30 || rd.Header.Env["TERM"] != "screen" {
		t.Errorf("header %+v", rd.Header)
	}
	var resized bool
	var typed strings.Builder
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		if ev.Code == asciicast.Resize && ev.Data == "90x25" {
			resized = true
		}
		if ev.Code == asciicast.Input {
			typed.WriteString(ev.Data)
		}
	}
	if !strings.Contains(typed.String(), "stty size\r") {
		t.Errorf("input events %q lack the typed command", typed.String())
	}
	if !resized {
		t.Error("no resize event 90x25 in the recording")
	}
	if out, err := recAsciinemaCat(t, casts[0]); err != nil || !strings.Contains(out, "done-marker") {
		t.Errorf("asciinema cat: %v\n%s", err, out)
	}
}
