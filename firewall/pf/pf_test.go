package pf

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	buildOnce sync.Once
	fakeBin   string
	buildErr  error
)

// fakePfctl builds testdata/fakepfctl once per test binary.
func fakePfctl(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fakepfctl")
		if err != nil {
			buildErr = err
			return
		}
		fakeBin = filepath.Join(dir, "pfctl")
		out, err := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakepfctl").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build fake pfctl: %v", buildErr)
	}
	return fakeBin
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if fakeBin != "" {
		os.RemoveAll(filepath.Dir(fakeBin))
	}
	os.Exit(code)
}

// fakeHost is a pf "host": the fake's state directory, with the tables
// pf.conf declares.
type fakeHost struct {
	dir, tmp string
}

func newFakeHost(t *testing.T, limit string, tables ...string) (*fakeHost, Options) {
	t.Helper()
	h := &fakeHost{dir: t.TempDir(), tmp: t.TempDir()}
	os.MkdirAll(filepath.Join(h.dir, "tables"), 0o755)
	for _, tb := range tables {
		os.WriteFile(filepath.Join(h.dir, "tables", tb), nil, 0o644)
	}
	if limit != "" {
		os.WriteFile(filepath.Join(h.dir, "limit"), []byte(limit), 0o644)
	}
	t.Setenv("FAKEPFCTL_DIR", h.dir)
	return h, Options{Pfctl: fakePfctl(t), TempDir: h.tmp}
}

var tmpName = regexp.MustCompile(`rampart-(\w+)-\d+\.txt`)

// checkGolden compares the command lines the fake received with
// testdata/golden/NAME.txt.
func (h *fakeHost) checkGolden(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(b), h.tmp, "$TMPDIR")
	got = tmpName.ReplaceAllString(got, "rampart-$1-N.txt")
	golden := filepath.Join("testdata", "golden", name+".txt")
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("pfctl command lines differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

func (h *fakeHost) table(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(h.dir, "tables", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func set(ss ...string) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, s := range ss {
		b.AddPrefix(netip.MustParsePrefix(s))
	}
	s, _ := b.IPSet()
	return s
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestSync(t *testing.T) {
	h, opts := newFakeHost(t, "", "rampart", "other")
	os.WriteFile(filepath.Join(h.dir, "tables", "other"), []byte("203.0.113.9\n"), 0o644)
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Replace(ctx, set("192.0.2.0/24", "198.51.100.7/32", "2001:db8::/48")); err != nil {
		t.Fatal(err)
	}
	if got, want := h.table(t, "rampart"), "192.0.2.0/24\n198.51.100.7\n2001:db8::/48\n"; got != want {
		t.Errorf("table after replace:\n%s\nwant:\n%s", got, want)
	}
	// Removing one address of a blocked /24 splits it; adding an address
	// next to a blocked one merges nothing in pf (exact networks).
	if err := b.Apply(ctx, firewall.Delta{
		Add:    prefixes("198.51.100.8/32", "2001:db8:1::1/128"),
		Remove: prefixes("192.0.2.128/25", "192.0.2.5/32", "203.0.113.1/32"),
	}); err != nil {
		t.Fatal(err)
	}
	cur, err := b.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := set("192.0.2.0/25", "198.51.100.7/32", "198.51.100.8/32", "2001:db8::/48", "2001:db8:1::1/128")
	var wb netipx.IPSetBuilder
	wb.AddSet(want)
	wb.Remove(netip.MustParseAddr("192.0.2.5"))
	want, _ = wb.IPSet()
	if !cur.Equal(want) {
		t.Errorf("current = %v, want %v", cur.Prefixes(), want.Prefixes())
	}
	// A delta that changes nothing runs no table command.
	if err := b.Apply(ctx, firewall.Delta{Add: prefixes("192.0.2.1/32")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.table(t, "rampart"); got != "" {
		t.Errorf("table after Remove = %q", got)
	}
	if got := h.table(t, "other"); got != "203.0.113.9\n" {
		t.Errorf("another table was touched: %q", got)
	}
	h.checkGolden(t, "sync")
}

func TestMissingTable(t *testing.T) {
	h, opts := newFakeHost(t, "", "other")
	b, _ := New(opts)
	err := b.Replace(context.Background(), set("192.0.2.1/32"))
	if !errors.Is(err, ErrNoTable) {
		t.Fatalf("err = %v, want ErrNoTable", err)
	}
	for _, line := range []string{"table <rampart> persist", "block drop in quick from <rampart>", "pfctl -f /etc/pf.conf"} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("error does not quote %q:\n%v", line, err)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "tables", "rampart")); err == nil {
		t.Error("the table was created anyway")
	}
	if err := b.Remove(context.Background()); err != nil {
		t.Errorf("Remove of a missing table: %v", err)
	}
	h.checkGolden(t, "missing_table")
}

func TestTableEntriesLimit(t *testing.T) {
	h, opts := newFakeHost(t, "4", "rampart")
	b, _ := New(opts)
	ctx := context.Background()
	if err := b.Replace(ctx, set("192.0.2.1/32", "192.0.2.3/32")); err != nil {
		t.Fatal(err)
	}
	err := b.Replace(ctx, set("192.0.2.1/32", "192.0.2.3/32", "192.0.2.5/32", "192.0.2.7/32", "192.0.2.9/32"))
	if !errors.Is(err, ErrTooManyEntries) || !strings.Contains(err.Error(), "set limit table-entries") {
		t.Fatalf("err = %v, want ErrTooManyEntries naming set limit table-entries", err)
	}
	if got := h.table(t, "rampart"); got != "192.0.2.1\n192.0.2.3\n" {
		t.Errorf("table half-loaded: %q", got)
	}
	err = b.Apply(ctx, firewall.Delta{Add: prefixes("198.51.100.1/32", "198.51.100.3/32", "198.51.100.5/32")})
	if !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("delta err = %v, want ErrTooManyEntries", err)
	}
	h.checkGolden(t, "limit")
}

func TestKillStates(t *testing.T) {
	h, opts := newFakeHost(t, "", "rampart")
	opts.KillStates = true
	opts.KillLimit = 2
	b, _ := New(opts)
	ctx := context.Background()
	if err := b.Replace(ctx, set("192.0.2.1/32")); err != nil {
		t.Fatal(err)
	}
	// Only newly blocked sources are killed, at most KillLimit of them.
	if err := b.Replace(ctx, set("192.0.2.1/32", "198.51.100.0/24", "2001:db8::1/128", "2001:db8::3/128")); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, firewall.Delta{Add: prefixes("203.0.113.5/32")}); err != nil {
		t.Fatal(err)
	}
	h.checkGolden(t, "kill_states")
}

func TestParseShow(t *testing.T) {
	got, err := ParseShow([]byte("   192.0.2.0/24\n  !192.0.2.7\n   2001:db8::1\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Contains(netip.MustParseAddr("192.0.2.7")) || !got.Contains(netip.MustParseAddr("192.0.2.8")) || !got.Contains(netip.MustParseAddr("2001:db8::1")) {
		t.Errorf("ParseShow = %v", got.Prefixes())
	}
	if _, err := ParseShow([]byte("   example.org\n")); err == nil {
		t.Error("ParseShow accepted a hostname")
	}
}

func TestParseTableEntriesLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"states        hard limit    10000\ntable-entries hard limit   400000\n", 400000},
		{"", DefaultTableEntries},
		{"table-entries hard limit  lots\n", DefaultTableEntries},
	} {
		if got := ParseTableEntriesLimit([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseTableEntriesLimit(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestNewRejectsBadTable(t *testing.T) {
	for _, name := range []string{"a b", "x>", strings.Repeat("a", 32)} {
		if _, err := New(Options{Table: name}); err == nil {
			t.Errorf("New accepted table %q", name)
		}
	}
}

func FuzzParseShow(f *testing.F) {
	f.Add("   192.0.2.0/24\n  !192.0.2.7\n")
	f.Add("   2001:db8::/32\n")
	f.Fuzz(func(t *testing.T, in string) {
		set, err := ParseShow([]byte(in))
		if err == nil && set == nil {
			t.Fatal("nil set without error")
		}
	})
}
