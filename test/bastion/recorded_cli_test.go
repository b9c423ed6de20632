package bastion_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
	"github.com/rampart-sec/rampart/test/testenv"
)

// `bastion sessions` lists a running session as live, `bastion watch ID`
// follows it read-only until it ends, and `bastion replay` plays the file.
func TestRecordedCLI(t *testing.T) {
	w := recNewWorld(t, nil)
	bin := testenv.BuildCommand(t, "bastion")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	session := exec.CommandContext(ctx, testenv.Binary(t, "ssh"), append(w.sshArgs(w.addr), "for i in $(seq 1 30); do echo tick-$i; sleep 0.1; done")...)
	var sessOut bytes.Buffer
	session.Stdout, session.Stderr = &sessOut, &sessOut
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	recWaitFor(t, "a live session in `bastion sessions`", 20*time.Second, func() bool {
		out, err := exec.Command(bin, "sessions", "--dir", w.cfg.Dir, "--json").Output()
		if err != nil {
			return false
		}
		var s struct{ ID, State, User string }
		if json.Unmarshal(out, &s) == nil && s.State == "live" && s.User == "alice" {
			id = s.ID
			return true
		}
		return false
	})
	watch := exec.CommandContext(ctx, bin, "watch", id, "--dir", w.cfg.Dir)
	var watched bytes.Buffer
	watch.Stdout = &watched
	if err := watch.Run(); err != nil {
		t.Fatalf("bastion watch: %v", err)
	}
	if err := session.Wait(); err != nil {
		t.Fatalf("session: %v\n%s", err, sessOut.String())
	}
	if !strings.Contains(watched.String(), "tick-1\n") || !strings.Contains(watched.String(), "tick-30\n") {
		t.Errorf("watch showed %q", watched.String())
	}

	out, err := exec.Command(bin, "sessions", "--dir", w.cfg.Dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) || !strings.Contains(string(out), "ended") {
		t.Errorf("bastion sessions: %v\n%s", err, out)
	}

	file := filepath.Join(w.cfg.Dir, id+".cast")
	replay, err := exec.Command(bin, "replay", file, "--speed", "50", "--idle-limit", "0.01").Output()
	if err != nil {
		t.Fatalf("bastion replay: %v", err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		if ev.Code == "o" {
			want.WriteString(ev.Data)
		}
	}
	if string(replay) != want.String() || string(replay) != sessOut.String() {
		t.Errorf("replay %q\nrecorded %q\nshown %q", replay, want.String(), sessOut.String())
	}
}
