package bastion_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/test/testenv"
)

// recListed is one line of `bastion sessions --json`.
type recListed struct {
	ID, State, Kind, User, Target, File string
	Transfers                           int64 `json:"transfers"`
	TransferBytes                       int64 `json:"transfer_bytes"`
}

// recSessionsJSON runs `bastion sessions --json` on dir.
func recSessionsJSON(bin, dir string) ([]recListed, error) {
	out, err := exec.Command(bin, "sessions", "--dir", dir, "--json").Output()
	if err != nil {
		return nil, err
	}
	var all []recListed
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var s recListed
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, err
		}
		all = append(all, s)
	}
	return all, sc.Err()
}

// recWaitListed polls `bastion sessions` until a session of kind matches.
func recWaitListed(t *testing.T, bin, dir, what, kind string, ok func(recListed) bool) recListed {
	t.Helper()
	var found recListed
	recWaitFor(t, what, 20*time.Second, func() bool {
		all, err := recSessionsJSON(bin, dir)
		if err != nil {
			return false
		}
		for _, s := range all {
			if s.Kind == kind && ok(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// sftpArgs are the OpenSSH sftp arguments to reach the proxy at addr (sftp
// takes -P for the port), without the destination.
func (w *recWorld) sftpArgs(addr string) []string {
	_, port, _ := net.SplitHostPort(addr)
	args := w.sshArgs(addr)
	args = args[:len(args)-1]
	for i, a := range args {
		if a == "-p" {
			args = append(args[:i], args[i+2:]...)
			break
		}
	}
	return append([]string{"-P", port}, args...)
}

// recSFTPSession starts an sftp client through the proxy at addr that
// reads its batch commands from the returned pipe; closing it ends the
// session.
func recSFTPSession(t *testing.T, ctx context.Context, w *recWorld, addr string) (io.WriteCloser, *exec.Cmd, *bytes.Buffer) {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, testenv.Binary(t, "sftp"), append(w.sftpArgs(addr), "-b", "-", "alice@"+host)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return stdin, cmd, &out
}

func recPayload(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	payload := make([]byte, n)
	rand.Read(payload)
	src := filepath.Join(dir, "upload.bin")
	if err := os.WriteFile(src, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	return src, payload
}

// sftp and scp sessions appear in `bastion sessions` with their kind,
// target and transfers: live while the sftp session is open (and `bastion
// watch` follows its transfers), ended after; `bastion replay` of the
// transfer log lists the transfers instead of playing a screen.
func TestRecordedTransferSessionsListed(t *testing.T) {
	w := recNewWorld(t, nil)
	bin := testenv.BuildCommand(t, "bastion")
	local, remote := recSharedDir(t), recSharedDir(t)
	src, payload := recPayload(t, local, 200_000)
	up, moved := filepath.Join(remote, "up.bin"), filepath.Join(remote, "moved.bin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stdin, sftp, sftpOut := recSFTPSession(t, ctx, w, w.addr)
	fmt.Fprintf(stdin, "put %s %s\n", src, up)
	live := recWaitListed(t, bin, w.cfg.Dir, "the open sftp session, live with its upload", "sftp", func(s recListed) bool {
		return s.State == "live" && s.Transfers == 1
	})
	if live.User != "alice" || live.Target != "target" || live.TransferBytes != int64(len(payload)) {
		t.Errorf("live sftp session listed as %+v", live)
	}
	if _, err := os.Stat(up); err != nil {
		t.Fatalf("the upload did not reach the target: %v", err)
	}

	// Watch it while it is live; the rename shows up, and watch returns
	// when the session ends.
	watch := exec.CommandContext(ctx, bin, "watch", live.ID, "--dir", w.cfg.Dir)
	var watched, watchErr bytes.Buffer
	watch.Stdout, watch.Stderr = &watched, &watchErr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "rename %s %s\n", up, moved)
	recWaitListed(t, bin, w.cfg.Dir, "the rename in the live session", "sftp", func(s recListed) bool {
		return s.ID == live.ID && s.State == "live" && s.Transfers == 2
	})
	stdin.Close()
	if err := sftp.Wait(); err != nil {
		t.Fatalf("sftp: %v\n%s", err, sftpOut)
	}
	if err := watch.Wait(); err != nil {
		t.Fatalf("bastion watch: %v\n%s", err, watchErr.String())
	}
	wantUp := fmt.Sprintf("upload   %q  %d bytes  ok", up, len(payload))
	wantRename := fmt.Sprintf("rename   %q -> %q  ok", up, moved)
	if !strings.Contains(watched.String(), wantUp) || !strings.Contains(watched.String(), wantRename) {
		t.Errorf("bastion watch showed:\n%s\nwant lines with %s and %s", watched.String(), wantUp, wantRename)
	}
	if !strings.Contains(watchErr.String(), "sftp session of alice@target") {
		t.Errorf("bastion watch did not say what it shows: %q", watchErr.String())
	}

	ended := recWaitListed(t, bin, w.cfg.Dir, "the sftp session ended", "sftp", func(s recListed) bool {
		return s.ID == live.ID && s.State == "ended"
	})
	if ended.Transfers != 2 || ended.TransferBytes != int64(len(payload)) {
		t.Errorf("ended sftp session listed as %+v", ended)
	}
	if n := len(w.audit.find("recorded.transfer")); n != 2 {
		t.Errorf("audit has %d transfer events, want 2 (the audit is unchanged by the log)", n)
	}

	// Legacy scp: a session of its own kind.
	host, port, _ := net.SplitHostPort(w.addr)
	scpArgs := append([]string{"-O", "-P", port}, w.sftpArgs(w.addr)[2:]...)
	dst := filepath.Join(remote, "scp.bin")
	if out, err := exec.CommandContext(ctx, testenv.Binary(t, "scp"), append(scpArgs, src, "alice@"+host+":"+dst)...).CombinedOutput(); err != nil {
		t.Fatalf("scp: %v\n%s", err, out)
	}
	scp := recWaitListed(t, bin, w.cfg.Dir, "the scp session ended", "scp", func(s recListed) bool { return s.State == "ended" })
	if scp.Transfers != 1 || scp.TransferBytes != int64(len(payload)) || scp.User != "alice" || scp.Target != "target" {
		t.Errorf("scp session listed as %+v", scp)
	}

	out, err := exec.Command(bin, "sessions", "--dir", w.cfg.Dir).CombinedOutput()
	if err != nil {
		t.Fatalf("bastion sessions: %v\n%s", err, out)
	}
	t.Logf("bastion sessions:\n%s", out)
	for _, id := range []string{live.ID, scp.ID} {
		var line string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, id) {
				line = l
			}
		}
		kind := map[string]string{live.ID: "sftp", scp.ID: "scp"}[id]
		if f := strings.Fields(line); len(f) < 3 || f[1] != "ended" || f[2] != kind || !strings.Contains(line, " target ") {
			t.Errorf("bastion sessions shows %s as %q, want ended %s on target:\n%s", id, line, kind, out)
		}
	}
	if n := len(recCasts(t, w.cfg.Dir)); n != 0 {
		t.Errorf("file transfers made %d screen recordings", n)
	}

	// Replay of a transfer log lists the transfers and says why.
	file := recorded.TransfersPath(w.cfg.Dir, live.ID)
	replay := exec.Command(bin, "replay", file)
	var replayOut, replayErr bytes.Buffer
	replay.Stdout, replay.Stderr = &replayOut, &replayErr
	if err := replay.Run(); err != nil {
		t.Fatalf("bastion replay: %v\n%s", err, replayErr.String())
	}
	if replayOut.String() != watched.String() {
		t.Errorf("replay listed:\n%s\nwatch showed:\n%s", replayOut.String(), watched.String())
	}
	if !strings.Contains(replayErr.String(), "not screen-recorded") {
		t.Errorf("replay did not say why there is no screen: %q", replayErr.String())
	}
	if out, err := recAsciinemaCat(t, file); err != nil {
		t.Errorf("asciinema rejects the transfer log: %v\n%s", err, out)
	}
}

// A proxy killed (SIGKILL) during an sftp session leaves a transfer log
// that lists as interrupted, with the transfers made before the kill.
func TestRecordedTransferSessionCrash(t *testing.T) {
	w := recNewWorld(t, nil) // for the target and keys; the proxy under test is a child
	cfg := w.cfg
	cfg.Dir = filepath.Join(t.TempDir(), "recordings")
	addr, child := recStartChild(t, cfg)
	local, remote := recSharedDir(t), recSharedDir(t)
	src, payload := recPayload(t, local, 50_000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	stdin, _, _ := recSFTPSession(t, ctx, w, addr)
	fmt.Fprintf(stdin, "put %s %s\n", src, filepath.Join(remote, "up.bin"))
	var before recorded.Recording
	recWaitFor(t, "the upload in the live transfer log", 20*time.Second, func() bool {
		recs, err := recorded.List(cfg.Dir)
		if err != nil || len(recs) != 1 {
			return false
		}
		before = recs[0]
		return before.State == recorded.Live && before.Transfers == 1
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	recs, err := recorded.List(cfg.Dir)
	if err != nil || len(recs) != 1 {
		t.Fatalf("List: %+v, %v", recs, err)
	}
	r := recs[0]
	if r.State != recorded.Interrupted || r.Kind != "sftp" || r.Transfers != 1 || r.TransferBytes != int64(len(payload)) || r.Err != nil {
		t.Errorf("after the kill: %+v; want one interrupted sftp session with the upload", r)
	}
	if r.ID != before.ID || r.Path != recorded.TransfersPath(cfg.Dir, r.ID) {
		t.Errorf("listed %s at %s, live it was %s", r.ID, r.Path, before.ID)
	}
}
