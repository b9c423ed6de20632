package recorded

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

func writeCast(t testing.TB, dir, id string, size int, mod time.Time) {
	t.Helper()
	var b bytes.Buffer
	w, err := asciicast.NewWriter(&b, asciicast.Header{Width: 80, Height: 24, User: "alice", Target: "db1", SessionID: id}, asciicast.WriterOptions{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Output(bytes.Repeat([]byte("x"), size))
	w.Close()
	p := CastPath(dir, id)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, mod, mod)
}

func TestPrune(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		r    Retention
		want []string // what remains
	}{
		{"no limits", Retention{}, []string{"a", "b", "c", "live"}},
		{"age", Retention{MaxAge: 36 * time.Hour}, []string{"b", "c", "live"}},
		{"size (live ones count, but stay)", Retention{MaxBytes: 2000}, []string{"c", "live"}},
		{"both", Retention{MaxAge: 5 * time.Hour, MaxBytes: 1 << 30}, []string{"c", "live"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeCast(t, dir, "live", 1000, now.Add(-100*time.Hour)) // oldest, but live
			writeCast(t, dir, "a", 1000, now.Add(-48*time.Hour))
			writeCast(t, dir, "b", 1000, now.Add(-24*time.Hour))
			writeCast(t, dir, "c", 100, now.Add(-time.Hour))
			lock, err := createLive(livePath(dir, "live"))
			if err != nil {
				t.Fatal(err)
			}
			defer removeLive(lock)
			os.WriteFile(filepath.Join(dir, "unrelated.txt"), make([]byte, 5000), 0o600)
			if _, err := Prune(dir, tt.r, now); err != nil {
				t.Fatal(err)
			}
			m, _ := filepath.Glob(filepath.Join(dir, "*.cast"))
			var got []string
			for _, p := range m {
				got = append(got, filepath.Base(p[:len(p)-len(".cast")]))
			}
			sort.Strings(got)
			if len(got) != len(tt.want) {
				t.Fatalf("kept %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("kept %v, want %v", got, tt.want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "unrelated.txt")); err != nil {
				t.Error("pruned a file that is not a recording")
			}
		})
	}
}

func TestListAndFollow(t *testing.T) {
	dir := t.TempDir()
	writeCast(t, dir, "ended", 10, time.Now())
	writeCast(t, dir, "crashed", 10, time.Now())
	os.WriteFile(livePath(dir, "crashed"), []byte("123\n"), 0o600) // marker nobody holds

	// A live session, written while Follow reads it.
	lock, err := createLive(livePath(dir, "running"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(CastPath(dir, "running"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := asciicast.NewWriter(f, asciicast.Header{Width: 80, Height: 24, User: "bob"}, asciicast.WriterOptions{FlushInterval: 5 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, r := range recs {
		states[r.ID] = r.State
	}
	if states["ended"] != Ended || states["crashed"] != Interrupted || states["running"] != Live {
		t.Fatalf("states %v", states)
	}

	var out bytes.Buffer
	done := make(chan error, 1)
	var hdr asciicast.Header
	go func() {
		done <- Follow(context.Background(), dir, "running", &out, FollowOptions{Poll: 5 * time.Millisecond, OnHeader: func(h asciicast.Header) { hdr = h }})
	}()
	for i := 0; i < 20; i++ {
		w.Output([]byte{'a' + byte(i)})
		time.Sleep(2 * time.Millisecond)
	}
	w.Close()
	f.Close()
	removeLive(lock)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != "abcdefghijklmnopqrst" || hdr.User != "bob" {
		t.Errorf("followed %q (header %+v)", out.String(), hdr)
	}
	if err := Follow(context.Background(), dir, "../etc/passwd", &out, FollowOptions{}); err == nil {
		t.Error("Follow accepted a path as a session id")
	}
}
