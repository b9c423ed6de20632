package bastion_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// An sftp upload (and download, rename, remove) through the recording proxy
// works and each file operation is audited with its path and size; no
// terminal recording is made for it. Legacy scp is audited the same way.
func TestRecordedFileTransfer(t *testing.T) {
	w := recNewWorld(t, nil)
	sftp := testenv.Binary(t, "sftp")
	scp := testenv.Binary(t, "scp")
	local := recSharedDir(t)
	remote := recSharedDir(t) // the target runs on this machine
	payload := make([]byte, 300_000)
	rand.Read(payload)
	src := filepath.Join(local, "upload.bin")
	if err := os.WriteFile(src, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(local, "batch")
	up, moved, back := filepath.Join(remote, "up.bin"), filepath.Join(remote, "moved.bin"), filepath.Join(local, "back.bin")
	fmt.Fprintf(recCreate(t, batch), "put %s %s\nrename %s %s\nget %s %s\nrm %s\n", src, up, up, moved, moved, back, moved)

	host, port, _ := net.SplitHostPort(w.addr)
	args := w.sshArgs(w.addr)
	args = append([]string{"-b", batch, "-P", port}, args[:len(args)-1]...)
	for i, a := range args { // sftp takes -P, not -p
		if a == "-p" {
			args = append(args[:i], args[i+2:]...)
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, sftp, append(args, "alice@"+host)...).CombinedOutput(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("round trip through sftp: %v", err)
	}
	recWaitFor(t, "the sftp session's end", 10*time.Second, func() bool { return len(w.audit.find("recorded.end")) == 1 })
	want := []map[string]any{
		{"protocol": "sftp", "op": "upload", "path": up, "bytes": int64(len(payload)), "status": "ok"},
		{"protocol": "sftp", "op": "rename", "path": up, "new_path": moved, "status": "ok"},
		{"protocol": "sftp", "op": "download", "path": moved, "bytes": int64(len(payload)), "status": "ok"},
		{"protocol": "sftp", "op": "remove", "path": moved, "status": "ok"},
	}
	recCheckTransfers(t, w, want)
	if n := len(recCasts(t, w.cfg.Dir)); n != 0 {
		t.Errorf("sftp made %d terminal recordings", n)
	}

	// Legacy scp (-O): the exec "scp -t" is parsed, not recorded.
	scpArgs := []string{"-O", "-P", port}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-b", "-P":
			i++
		default:
			scpArgs = append(scpArgs, args[i])
		}
	}
	dst := filepath.Join(remote, "scp.bin")
	if out, err := exec.CommandContext(ctx, scp, append(scpArgs, src, "alice@"+host+":"+dst)...).CombinedOutput(); err != nil {
		t.Fatalf("scp: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("scp upload: %v", err)
	}
	recWaitFor(t, "the scp session's end", 10*time.Second, func() bool { return len(w.audit.find("recorded.end")) == 2 })
	recCheckTransfers(t, w, append(want, map[string]any{"protocol": "scp", "op": "upload", "path": dst, "bytes": int64(len(payload)), "status": "ok"}))
	if n := len(recCasts(t, w.cfg.Dir)); n != 0 {
		t.Errorf("scp made %d terminal recordings", n)
	}
}

func recCreate(t testing.TB, path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func recCheckTransfers(t testing.TB, w *recWorld, want []map[string]any) {
	t.Helper()
	got := w.audit.find("recorded.transfer")
	if len(got) != len(want) {
		t.Fatalf("transfer events: got %d, want %d:\n%s", len(got), len(want), w.audit)
	}
	for i, wf := range want {
		for k, v := range wf {
			if fmt.Sprint(got[i].Fields[k]) != fmt.Sprint(v) {
				t.Errorf("transfer %d: %s = %v, want %v (event %v)", i, k, got[i].Fields[k], v, got[i].Fields)
			}
		}
		if got[i].Fields["user"] != "alice" || got[i].Fields["session"] == "" {
			t.Errorf("transfer %d lacks user or session: %v", i, got[i].Fields)
		}
	}
}
