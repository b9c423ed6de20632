package asciicast

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeClock advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(1_700_000_000, 0)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func TestWriterGolden(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{
		Width: 80, Height: 24, Title: "alice@db1", Env: map[string]string{"TERM": "xterm-256color"},
		User: "alice", Source: "192.0.2.7:51234", Target: "db1", TargetAddr: "db1.internal:22",
		RemoteUser: "alice", SessionID: "20231114T221320Z-0badcafe",
	}, WriterOptions{Now: fakeClock(250 * time.Millisecond), FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return w.Output([]byte("$ ls\r\n")) },
		func() error { return w.Input([]byte("ls\r")) },
		func() error { return w.Output([]byte("caf\xc3")) }, // é cut in two
		func() error { return w.Output([]byte("\xa9 \"quoted\" back\\slash\ttab\x1b[1mbold\x1b[0m\x00\x7f")) },
		func() error { return w.Output([]byte("bad \xff byte, emoji \xf0\x9f\x94\x92\n")) },
		func() error { return w.Resize(132, 43) },
		func() error { return w.Mark("chapter") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/session.cast"
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("got:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
	n, events := w.Stats()
	if n != int64(buf.Len()) || events != 7 {
		t.Errorf("Stats = %d, %d; want %d, 7", n, events, buf.Len())
	}

	rd, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Code == Output {
			out.WriteString(ev.Data)
		}
	}
	want2 := "$ ls\r\ncafé \"quoted\" back\\slash\ttab\x1b[1mbold\x1b[0m\x00\x7fbad \ufffd byte, emoji 🔒\n"
	if out.String() != want2 {
		t.Errorf("read back %q, want %q", out.String(), want2)
	}
}

// A writer only ever hands whole lines to the file, whatever the buffer
// size, so a crash never leaves half an event.
func TestWriterWholeLines(t *testing.T) {
	var writes [][]byte
	rec := writerFunc(func(p []byte) (int, error) {
		writes = append(writes, append([]byte(nil), p...))
		return len(p), nil
	})
	w, err := NewWriter(rec, Header{Width: 80, Height: 24}, WriterOptions{BufferSize: 100, FlushInterval: -1, Now: fakeClock(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		w.Output(bytes.Repeat([]byte{'a' + byte(i%26)}, i*7))
	}
	w.Close()
	for i, p := range writes {
		if len(p) == 0 || p[len(p)-1] != '\n' {
			t.Fatalf("write %d does not end a line: %q", i, p)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The first write error is sticky, reported once through OnError, and the
// background flusher surfaces it without any new event.
func TestWriterError(t *testing.T) {
	fail := false
	dst := writerFunc(func(p []byte) (int, error) {
		if fail {
			return 3, errors.New("no space left on device")
		}
		return len(p), nil
	})
	got := make(chan error, 2)
	w, err := NewWriter(dst, Header{}, WriterOptions{FlushInterval: 10 * time.Millisecond, OnError: func(err error) { got <- err }})
	if err != nil {
		t.Fatal(err)
	}
	fail = false
	if err := w.Output([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	fail = true
	w.mu.Unlock()
	select {
	case err := <-got:
		if !strings.Contains(err.Error(), "no space") {
			t.Errorf("OnError got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flusher did not report the error")
	}
	if err := w.Output([]byte("more")); err == nil {
		t.Error("write after failure succeeded")
	}
	w.Close()
	if len(got) != 0 {
		t.Error("OnError called twice")
	}
}

func TestNewWriterHeaderError(t *testing.T) {
	dst := writerFunc(func(p []byte) (int, error) { return 0, errors.New("disk full") })
	if _, err := NewWriter(dst, Header{}, WriterOptions{}); err == nil {
		t.Fatal("NewWriter succeeded on an unwritable destination")
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		events  int
		wantErr string // from NewReader or the first bad Next
	}{
		{"asciinema file", "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"hi\"]\n[1.0, \"r\", \"100x40\"]\n", 2, ""},
		{"blank lines", "{\"version\": 2}\n\n[0.5, \"o\", \"hi\"]\n\n", 1, ""},
		{"torn last line", "{\"version\": 2}\n[0.5, \"o\", \"hi\"]\n[0.7, \"o\", \"h", 1, "incomplete"},
		{"version 1", "{\"version\": 1}\n", 0, "version 1"},
		{"no header", "", 0, "no header"},
		{"not json", "{\"version\": 2}\n[0.5, \"o\", hi]\n", 0, "line 2"},
		{"two elements", "{\"version\": 2}\n[0.5, \"o\"]\n", 0, "2 elements"},
		{"negative time", "{\"version\": 2}\n[-1, \"o\", \"x\"]\n", 0, "out of range"},
		{"number data", "{\"version\": 2}\n[1, \"o\", 5]\n", 0, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := NewReader(strings.NewReader(tt.in))
			n := 0
			for err == nil {
				_, err = rd.Next()
				if err == nil {
					n++
				}
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if n != tt.events {
				t.Errorf("%d events, want %d", n, tt.events)
			}
		})
	}
}

func TestPlay(t *testing.T) {
	in := "{\"version\": 2, \"idle_time_limit\": 2}\n[1, \"o\", \"a\"]\n[1.5, \"i\", \"typed\"]\n[11, \"o\", \"b\"]\n[11.5, \"o\", \"c\"]\n"
	tests := []struct {
		name  string
		opts  PlayOptions
		total time.Duration
	}{
		{"header idle limit", PlayOptions{}, 1*time.Second + 500*time.Millisecond + 2*time.Second + 500*time.Millisecond},
		{"speed and idle limit", PlayOptions{Speed: 2, IdleLimit: time.Second}, (1*time.Second + 500*time.Millisecond + time.Second + 500*time.Millisecond) / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := NewReader(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			var slept time.Duration
			tt.opts.Sleep = func(_ context.Context, d time.Duration) error { slept += d; return nil }
			var out bytes.Buffer
			if err := Play(context.Background(), &out, rd, tt.opts); err != nil {
				t.Fatal(err)
			}
			if out.String() != "abc" || slept != tt.total {
				t.Errorf("played %q sleeping %v; want \"abc\" sleeping %v", out.String(), slept, tt.total)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	seed, _ := os.ReadFile("testdata/session.cast")
	f.Add(seed)
	f.Add([]byte("{\"version\": 2}\n[0.5, \"o\", \"hi\"]\n"))
	f.Add([]byte("{\"version\": 2}\n[1e308, \"o\", \"\\ud800\"]\n[0.7, \"o\", \"h"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			if ev.Time < 0 {
				t.Fatalf("negative time %v", ev.Time)
			}
		}
	})
}

// Whatever bytes a session prints, in whatever chunks, the recording
// parses, and valid UTF-8 comes back exactly.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add([]byte("hello\r\n\x1b[1mworld"), uint8(3))
	f.Add([]byte("caf\xc3\xa9 \xf0\x9f\x94\x92"), uint8(1))
	f.Add([]byte("\xff\xfe\x00\"\\"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		size := int(chunk%16) + 1
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Header{Width: 80, Height: 24}, WriterOptions{FlushInterval: -1, BufferSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += size {
			if err := w.Output(data[i:min(i+size, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rd, err := NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("recording does not parse: %v", err)
			}
			got.WriteString(ev.Data)
		}
		if utf8.Valid(data) && got.String() != string(data) {
			t.Fatalf("round trip: got %q, want %q", got.String(), data)
		}
	})
}

func TestPlainASCII8(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			want := c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
			if got := plainASCII8(binary.LittleEndian.Uint64(b)); got != want {
				t.Fatalf("byte %#x at %d: got %v", c, pos, got)
			}
		}
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	p := bytes.Repeat([]byte("0123456789 the quick brown fox jumps over the lazy dog\r\n"), 1000)
	buf := make([]byte, 0, 2*len(p))
	b.SetBytes(int64(len(p)))
	for i := 0; i < b.N; i++ {
		buf = appendJSONString(buf[:0], p)
	}
}

// The recording path for terminal output, minus the disk: JSON escaping
// plus SHA-256 of what would be written (the proxy hashes every byte).
func BenchmarkWriterOutput(b *testing.B) {
	chunk := bytes.Repeat([]byte("0123456789 the quick brown fox jumps over the lazy dog\r\n"), 32<<10/57)
	h := sha256.New()
	w, err := NewWriter(h, Header{Width: 80, Height: 24}, WriterOptions{FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	const total = 64 << 20
	b.SetBytes(total)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for n := 0; n < total; n += len(chunk) {
			if err := w.Output(chunk); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	w.Close()
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*total/(1<<30)), "cpu-s/GB")
}

// cpuTime is the process's user+system CPU time (wall time misleads on a
// shared machine).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
