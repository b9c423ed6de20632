package bastion_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
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
