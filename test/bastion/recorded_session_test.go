package bastion_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
	"github.com/rampart-sec/rampart/test/testenv"
)

// An exec session through the proxy returns the target's output and exit
// status, is recorded as asciicast v2 with the session's identity in the
// header, and its SHA-256 reaches the audit log.
func TestRecordedExec(t *testing.T) {
	w := recNewWorld(t, nil)
	out, err := w.ssh(t, "echo recorded-$((6*7)); exit 3")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("ssh: %v (want exit status 3)\n%s", err, out)
	}
	if !strings.Contains(out, "recorded-42") {
		t.Fatalf("output %q lacks recorded-42", out)
	}
	casts := recCasts(t, w.cfg.Dir)
	if len(casts) != 1 {
		t.Fatalf("recordings: %v", casts)
	}
	f, err := os.Open(casts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := rd.Header
	if h.User != "alice" || h.Target != "target" || h.RemoteUser != w.cfg.TargetUser || h.SessionID == "" || !strings.HasPrefix(h.Source, "127.0.0.1:") || h.Command == "" {
		t.Errorf("header: %+v", h)
	}
	var all strings.Builder
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		all.WriteString(ev.Data)
	}
	if !strings.Contains(all.String(), "recorded-42") {
		t.Errorf("recording lacks the output: %q", all.String())
	}
	ends := w.audit.find("recorded.end")
	if len(ends) != 1 {
		t.Fatalf("end events: %v", ends)
	}
	sum := recSHA256(t, casts[0])
	if ends[0].Fields["sha256"] != sum || ends[0].Fields["exit_status"] != uint32(3) {
		t.Errorf("end event %v, want sha256 %s and exit 3", ends[0].Fields, sum)
	}
	if got := w.audit.find("recorded.start"); len(got) != 1 || got[0].Fields["session"] != h.SessionID {
		t.Errorf("start events: %v", got)
	}
	if cat, err := recAsciinemaCat(t, casts[0]); err != nil || !strings.Contains(cat, "recorded-42") {
		t.Errorf("asciinema cat: %v\n%s", err, cat)
	}
}

// Environment (allowlisted), stdin, exit status and exit signal pass
// through the proxy.
func TestRecordedPassThrough(t *testing.T) {
	w := recNewWorld(t, nil)
	tests := []struct {
		name    string
		stdin   string
		command string
		extra   []string
		want    string
		code    int
		signal  string
	}{
		{"env allowlist", "", `echo "lang=$LANG other=$RAMPART_NOT_ALLOWED"`,
			[]string{"-o", "SetEnv=LANG=C.UTF-8 RAMPART_NOT_ALLOWED=leaked"}, "lang=C.UTF-8 other=\n", 0, ""},
		{"stdin", "line one\nline two\n", "wc -l", nil, "2\n", 0, ""},
		{"exit status", "", "exit 7", nil, "", 7, ""},
		{"exit signal", "", "kill -KILL $$", nil, "", 255, "KILL"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Binary(t, "ssh"), append(w.sshArgs(w.addr, tt.extra...), tt.command)...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, err := cmd.Output()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want || code != tt.code {
				t.Errorf("got %q exit %d, want %q exit %d", out, code, tt.want, tt.code)
			}
			var ends []recEvent
			recWaitFor(t, "the end event", 10*time.Second, func() bool {
				ends = w.audit.find("recorded.end")
				return len(ends) == i+1
			})
			if tt.signal != "" && ends[i].Fields["exit_signal"] != tt.signal {
				t.Errorf("end event %v, want exit_signal %s", ends[i].Fields, tt.signal)
			}
		})
	}
}
