package detect

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector gathers lines from a source running in the background.
type collector struct {
	mu    sync.Mutex
	lines []string
	stop  context.CancelFunc
	done  chan error
}

func collect(t *testing.T, src Source) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{stop: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- src.Lines(ctx, func(l []byte) {
			c.mu.Lock()
			c.lines = append(c.lines, string(l))
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("source: %v", err)
		}
	})
	return c
}

// waitFor polls until the source delivered want, failing after a while.
func (c *collector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.lines)
		c.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines = %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFileFollowsRotationAndTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	appendTo(t, path, "old line before start\n")
	c := collect(t, &File{Path: path, Poll: 5 * time.Millisecond})
	time.Sleep(50 * time.Millisecond) // let it open and seek to the end

	appendTo(t, path, "one\ntw")
	c.waitFor(t, "one")
	appendTo(t, path, "o\r\n")
	c.waitFor(t, "one", "two")

	// logrotate's default: rename, then the writer creates a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", "three, written late to the old file\n")
	appendTo(t, path, "four\n")
	c.waitFor(t, "one", "two", "three, written late to the old file", "four")

	// copytruncate: the same file emptied in place.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	appendTo(t, path, "five\n")
	c.waitFor(t, "one", "two", "three, written late to the old file", "four", "five")
}

func TestFileWaitsForMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	c := collect(t, &File{Path: path, Poll: 5 * time.Millisecond})
	time.Sleep(30 * time.Millisecond)
	appendTo(t, path, "first\nsecond\n")
	c.waitFor(t, "first", "second")
}

func TestFileFromStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	appendTo(t, path, "a\nb\n")
	c := collect(t, &File{Path: path, FromStart: true, Poll: 5 * time.Millisecond})
	c.waitFor(t, "a", "b")
}

func TestLineBufferDropsLongLines(t *testing.T) {
	var got []string
	var lb lineBuffer
	emit := func(l []byte) { got = append(got, string(l)) }
	long := strings.Repeat("x", MaxLine+1)
	lb.write([]byte("short\n"+long[:100]), emit)
	lb.write([]byte(long[100:]+"\nafter\n"), emit)
	lb.write([]byte(long+"\n"), emit)
	lb.write([]byte("tail"), emit)
	lb.flush(emit)
	if want := []string{"short", "after", "tail"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestCommand(t *testing.T) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	script := `printf 'Failed password for root from 192.0.2.7 port 1 ssh2\npartial'; exit 3`
	c := collect(t, &Command{Argv: []string{sh, "-c", script}, Restart: time.Hour})
	c.waitFor(t, "Failed password for root from 192.0.2.7 port 1 ssh2")
}

func ExampleFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "auth.log")
	os.WriteFile(path, []byte("sshd[1]: Invalid user admin from 192.0.2.7 port 40000\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	src := &File{Path: path, FromStart: true, Poll: 10 * time.Millisecond}
	m := NewSSHD()
	src.Lines(ctx, func(line []byte) {
		if addr, ok := m.Match(line); ok {
			fmt.Println("offender:", addr)
			cancel()
		}
	})
	// Output: offender: 192.0.2.7
}

func nopLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
