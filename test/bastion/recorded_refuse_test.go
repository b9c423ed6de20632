package bastion_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/test/testenv"
)

// The target's host certificate must be signed by the configured host CA
// (or its key pinned); otherwise the session is refused and audited.
func TestRecordedHostKeyCheck(t *testing.T) {
	other, _ := recSigner(t)
	otherLine := string(gossh.MarshalAuthorizedKey(other.PublicKey()))
	tests := []struct {
		name   string
		mutate func(c *recProxyConfig, w *recWorld)
		ok     bool
	}{
		{"host CA matches", nil, true},
		{"host certificate from another CA", func(c *recProxyConfig, _ *recWorld) { c.HostCA = otherLine }, false},
		{"pinned host key", func(c *recProxyConfig, w *recWorld) {
			c.HostCA = ""
			c.HostKeys = []string{string(gossh.MarshalAuthorizedKey(w.sshd.HostKey))}
		}, true},
		{"pinned key does not match", func(c *recProxyConfig, _ *recWorld) {
			c.HostCA = ""
			c.HostKeys = []string{otherLine}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := recNewWorldWith(t, tt.mutate)
			out, err := w.ssh(t, "echo reached-target")
			if tt.ok {
				if err != nil || !strings.Contains(out, "reached-target") {
					t.Fatalf("ssh: %v\n%s", err, out)
				}
				return
			}
			if err == nil || strings.Contains(out, "reached-target") {
				t.Fatalf("session was not refused: %v\n%s", err, out)
			}
			if !strings.Contains(out, "target host key is not trusted") {
				t.Errorf("client was not told why: %q", out)
			}
			if len(w.audit.find("recorded.hostkey_rejected")) != 1 || len(w.audit.find("recorded.refused")) != 1 {
				t.Errorf("audit lacks the rejection")
			}
			if len(w.audit.find("recorded.start")) != 0 || len(recCasts(t, w.cfg.Dir)) != 0 {
				t.Errorf("a refused session left a recording or a start event")
			}
		})
	}
}

// With the recording disk full, new sessions are refused before anything
// runs on the target; a session whose recording fails midway is cut off.
func TestRecordedDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Need(t, "mount tmpfs: "+err.Error()+": "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	w := recNewWorld(t, func(c *recProxyConfig) { c.Dir = filepath.Join(mnt, "rec") })
	allow := recNewWorld(t, func(c *recProxyConfig) { c.Dir = filepath.Join(mnt, "allow"); c.Policy = "allow" })

	// Midway: the output outgrows the 64 KiB disk.
	out, err := w.ssh(t, "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo finished-marker")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("ssh: %v (want exit status 1)", err)
	}
	if strings.Contains(out, "finished-marker") || len(out) > 2000000 {
		t.Fatalf("the session ran on after its recording failed (%d bytes of output)", len(out))
	}
	if !strings.Contains(out, "session recording failed") {
		t.Errorf("client was not told: %q", recTail(out, 200))
	}
	if len(w.audit.find("recorded.recording_failed")) != 1 {
		t.Errorf("no recording_failed audit event")
	}

	// Fill whatever is left, then a new session is refused.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	filler.Close()
	before := recCountSessions(t, w.sshd)
	out, err = w.ssh(t, "echo should-not-run")
	if err == nil || strings.Contains(out, "should-not-run") {
		t.Fatalf("session ran with the disk full: %v\n%s", err, out)
	}
	if !strings.Contains(out, "recording is unavailable") {
		t.Errorf("client was not told: %q", out)
	}
	if got := recCountSessions(t, w.sshd); got != before {
		t.Errorf("the target saw a session (%d -> %d)", before, got)
	}
	if len(w.audit.find("recorded.refused")) != 1 {
		t.Errorf("no refused audit event")
	}
	// An sftp session needs its transfer log just the same.
	host, _, _ := net.SplitHostPort(w.addr)
	sftp := func(w *recWorld) (string, error) {
		cmd := exec.Command(testenv.Binary(t, "sftp"), append(w.sftpArgs(w.addr), "-b", "-", "alice@"+host)...)
		cmd.Stdin = strings.NewReader("ls /\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sftp(w); err == nil {
		t.Fatalf("sftp session ran with the disk full:\n%s", out)
	}
	if got := recCountSessions(t, w.sshd); got != before {
		t.Errorf("the target saw an sftp session (%d -> %d)", before, got)
	}
	if len(w.audit.find("recorded.refused")) != 2 {
		t.Errorf("no refused audit event for the sftp session:\n%s", w.audit)
	}

	// Under the allow policy the session runs, and the gap is audited.
	out, err = allow.ssh(t, "echo ran-unrecorded")
	if err != nil || !strings.Contains(out, "ran-unrecorded") {
		t.Fatalf("allow policy: %v\n%s", err, out)
	}
	if len(allow.audit.find("recorded.unrecorded")) != 1 || len(allow.audit.find("recorded.end")) != 1 {
		t.Errorf("allow policy: the unrecorded session was not audited")
	}
	if out, err := sftp(allow); err != nil {
		t.Fatalf("allow policy, sftp: %v\n%s", err, out)
	}
	if len(allow.audit.find("recorded.unrecorded")) != 2 || len(allow.audit.find("recorded.end")) != 2 {
		t.Errorf("allow policy: the sftp session without its transfer log was not audited:\n%s", allow.audit)
	}
}

func recCountSessions(t testing.TB, s *recSSHD) int {
	b, _ := os.ReadFile(s.LogPath)
	return strings.Count(string(b), "Starting session")
}
