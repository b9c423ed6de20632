package bastion_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/rampart-sec/rampart/test/testenv"
)

// TestPhoneFit: what a phone user reads. The menu fits 40 columns and
// shows the jump-only target as such; the code is asked for by the
// configured issuer's name, as the authenticator app shows it; a code
// already used is said so, with "wait for the next code"; dbclient shows
// the instruction and the prompt on separate lines.
func TestPhoneFit(t *testing.T) {
	w := bstNewWorld(t, bstSetup{
		Users:   []*bstUser{{Name: "alice"}, {Name: "replay"}, {Name: "dave"}},
		Targets: "  - name: target\n    addr: {{target}}\n    description: The test sshd behind the bastion, described at length\n",
		Extra:   "totp:\n  issuer: Example Corp\n",
	})

	t.Run("menu and prompt", func(t *testing.T) {
		r := w.ssh(w.totp("alice"), "-T", "alice@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "-  target") {
			t.Fatalf("login: %v\n%s", r.Err, r.Out)
		}
		if !strings.Contains(r.Prompts, "Example Corp code: ") {
			t.Errorf("the prompt does not name the issuer: %q", r.Prompts)
		}
		menu := r.Out[strings.Index(r.Out, "Rampart bastion: alice"):]
		for _, l := range strings.Split(strings.ReplaceAll(menu, "\r", ""), "\n") {
			if n := utf8.RuneCountInString(l); n > 40 {
				t.Errorf("menu line of %d columns: %q", n, l)
			}
		}
		if !strings.Contains(menu, "Jump only") || !strings.Contains(menu, "The test sshd") || strings.Contains(menu, "1)") {
			t.Errorf("menu:\n%s", menu)
		}
	})

	t.Run("a code already used is said so", func(t *testing.T) {
		code := w.totp("replay")
		if r := w.ssh(code, "-T", "replay@bastion"); r.Err != nil {
			t.Fatalf("first login: %v\n%s", r.Err, r.Out)
		}
		r := w.ssh(code, "-T", "replay@bastion")
		if r.Err == nil {
			t.Fatalf("the same code logged in twice:\n%s", r.Out)
		}
		if !strings.Contains(r.Out, "already used") || !strings.Contains(r.Out, "wait for the next code") {
			t.Errorf("the user is not told the code was used:\n%s", r.Out)
		}
		if strings.Count(r.Prompts, "Example Corp code") != 2 {
			t.Errorf("not asked for the next code: %q", r.Prompts)
		}
		w.waitRecord(map[string]any{"user": "replay", "method": "totp", "reason": "mfa: code already used; asked for the next code"})
	})

	t.Run("dbclient: instruction and prompt on separate lines", func(t *testing.T) {
		dbclient := testenv.Binary(t, "dbclient")
		// dbclient reads its own key format.
		dbKey := w.KeyPath + ".dropbear"
		if out, err := exec.Command(testenv.Binary(t, "dropbearconvert"), "openssh", "dropbear", w.KeyPath, dbKey).CombinedOutput(); err != nil {
			t.Fatalf("dropbearconvert: %v\n%s", err, out)
		}
		host, port, _ := net.SplitHostPort(w.Addr)
		out, err := runOnPTY(t, 60*time.Second, func(screen string) (string, bool) {
			if strings.HasSuffix(strings.TrimRight(screen, " "), "Example Corp code:") {
				return w.totp("dave") + "\r", true
			}
			return "", false
		}, dbclient, "-y", "-T", "-i", dbKey, "-p", port, "dave@"+host)
		if err != nil || !strings.Contains(out, "-  target") {
			t.Fatalf("dbclient login: %v\n%s", err, out)
		}
		if !strings.Contains(strings.ReplaceAll(out, "\r", ""), "Key accepted for dave.\nExample Corp code:") {
			t.Errorf("instruction and prompt share a line:\n%q", out)
		}
	})
}

// runOnPTY runs a program on a fresh pseudo-terminal, as dbclient reads
// keyboard-interactive answers from its terminal (and flushes typed-ahead
// input). answer is called with everything shown so far; once it returns
// true its text is typed and it is not called again.
func runOnPTY(t *testing.T, timeout time.Duration, answer func(screen string) (string, bool), name string, args ...string) (string, error) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Need(t, "no /dev/ptmx: "+err.Error())
	}
	defer master.Close()
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		answered := false
		for {
			k, err := master.Read(buf)
			if k > 0 {
				mu.Lock()
				screen.Write(buf[:k])
				s := screen.String()
				mu.Unlock()
				if !answered {
					if text, ok := answer(s); ok {
						answered = true
						master.Write([]byte(text))
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	err = cmd.Wait()
	master.SetReadDeadline(time.Now().Add(time.Second))
	<-done
	mu.Lock()
	defer mu.Unlock()
	return screen.String(), err
}
