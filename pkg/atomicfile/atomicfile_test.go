package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileModeAndContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	if err := WriteFile(p, []byte("old"), Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), Options{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("content = %q, %v; want new", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, Options{UID: -1, GID: -1}, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Fatalf("content = %q after failed write, want old", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	p := filepath.Join(t.TempDir(), "f")
	o, err := Owner(0o640, "nobody", "65534")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("x"), o); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != o.UID || sys.Gid != 65534 || st.Mode().Perm() != 0o640 {
		t.Fatalf("uid=%d gid=%d mode=%v", sys.Uid, sys.Gid, st.Mode().Perm())
	}
	if _, err := Owner(0o600, "no-such-user-rampart", ""); err == nil {
		t.Fatal("unknown user accepted")
	}
}
