package recorded

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// writeTransferLog writes a transfer log as the proxy does: a header with
// the kind, one marker per transfer, and the end marker when ended.
func writeTransferLog(t testing.TB, dir, id, kind string, evs []TransferEvent, ended bool, mod time.Time) {
	t.Helper()
	f, err := os.Create(TransfersPath(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := asciicast.NewWriter(f, asciicast.Header{Width: 80, Height: 24, User: "alice", Target: "db1", SessionID: id, Kind: kind}, asciicast.WriterOptions{FlushInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		w.Mark(transferLabel(ev))
	}
	if ended {
		w.Mark(transferEndMark)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !mod.IsZero() {
		os.Chtimes(f.Name(), mod, mod)
	}
}

func TestListTransferLogs(t *testing.T) {
	dir := t.TempDir()
	evs := []TransferEvent{
		{Op: "upload", Path: "/srv/a b.bin", Bytes: 300, Written: 300, Status: "ok"},
		{Op: "rename", Path: "/srv/a b.bin", Target: "/srv/c", Status: "ok"},
		{Op: "download", Path: "/srv/c", Bytes: 200, Read: 200, Status: "ok"},
	}
	writeTransferLog(t, dir, "s1", "sftp", evs, true, time.Time{})
	writeTransferLog(t, dir, "s2", "scp", evs[:1], false, time.Time{})
	os.WriteFile(livePath(dir, "s2"), []byte("1\n"), 0o600) // nobody holds it: interrupted
	writeCast(t, dir, "s3", 10, time.Now())
	// Not session files: a bad id, and a bare ".transfers.cast".
	os.WriteFile(filepath.Join(dir, "a.b.transfers.cast"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, ".transfers.cast"), nil, 0o600)

	recs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("List: %+v", recs)
	}
	type row struct {
		id, kind         string
		state            State
		transfers, bytes int64
	}
	want := []row{{"s1", "sftp", Ended, 3, 500}, {"s2", "scp", Interrupted, 1, 300}, {"s3", "shell", Ended, 0, 0}}
	for i, r := range recs {
		got := row{r.ID, r.Kind, r.State, r.Transfers, r.TransferBytes}
		if got != want[i] || r.Err != nil || r.Header.User != "alice" {
			t.Errorf("recording %d: %+v (err %v), want %+v", i, got, r.Err, want[i])
		}
	}

	// Follow (and so `bastion watch`) prints the transfers of a transfer log.
	var out bytes.Buffer
	if err := Follow(context.Background(), dir, "s1", &out, FollowOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `upload   "/srv/a b.bin"  300 bytes  ok`) ||
		!strings.Contains(lines[1], `rename   "/srv/a b.bin" -> "/srv/c"  ok`) || !strings.Contains(lines[2], `download "/srv/c"  200 bytes  ok`) {
		t.Errorf("Follow of a transfer log wrote:\n%s", out.String())
	}
}

// Retention treats transfer logs like recordings: old ones go, the live
// one stays whatever its age.
func TestPruneTransferLogs(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ev := []TransferEvent{{Op: "upload", Path: "/x", Bytes: 1, Status: "ok"}}
	writeTransferLog(t, dir, "old", "sftp", ev, true, now.Add(-48*time.Hour))
	writeTransferLog(t, dir, "livexfer", "sftp", ev, false, now.Add(-48*time.Hour))
	writeTransferLog(t, dir, "new", "scp", ev, true, now)
	os.WriteFile(livePath(dir, "old"), []byte("1\n"), 0o600) // stale marker goes with it
	lock, err := createLive(livePath(dir, "livexfer"))
	if err != nil {
		t.Fatal(err)
	}
	defer removeLive(lock)
	pruned, err := Prune(dir, Retention{MaxAge: 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned) != 1 || pruned[0].Path != TransfersPath(dir, "old") || pruned[0].Reason != "age" {
		t.Fatalf("pruned %+v", pruned)
	}
	for _, p := range []string{TransfersPath(dir, "old"), livePath(dir, "old")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived pruning", p)
		}
	}
	for _, p := range []string{TransfersPath(dir, "livexfer"), TransfersPath(dir, "new")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("pruning removed %s", p)
		}
	}
}
