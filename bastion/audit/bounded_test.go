package audit_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rampart-sec/rampart/bastion/audit"
)

// TestAppendBoundsLines: whatever the callers put in a record (a 200,000
// byte user name, control bytes that escape to six bytes each, broken
// UTF-8, hundreds of fields, nested values), the line written stays within
// audit.MaxLine, the chain verifies, and a cut value says it was cut.
func TestAppendBoundsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 11))
	junk := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			switch r.IntN(4) {
			case 0:
				b[i] = byte(r.IntN(0x20)) // escapes to \u00XX
			case 1:
				b[i] = byte(0x80 + r.IntN(0x80)) // broken UTF-8
			default:
				b[i] = byte('a' + r.IntN(26))
			}
		}
		return string(b)
	}
	const records = 60
	for i := range records {
		n := r.IntN(300000)
		rec := audit.Record{Type: audit.TypeAuth, User: junk(n), Source: junk(r.IntN(500)), Method: junk(r.IntN(5000)),
			Reason: junk(r.IntN(100000)), Target: junk(r.IntN(70000)), Session: junk(r.IntN(300))}
		if i%2 == 0 {
			rec.Fields = map[string]any{}
			for k := range r.IntN(300) {
				switch k % 3 {
				case 0:
					rec.Fields[junk(r.IntN(100))] = junk(r.IntN(10000))
				case 1:
					rec.Fields[junk(5)] = []string{junk(r.IntN(3000)), junk(10)}
				default:
					rec.Fields[junk(5)] = r.Int64()
				}
			}
		}
		if err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	// An ordinary record is kept whole.
	ok := audit.Record{Type: audit.TypeJump, User: "alice", Source: "192.0.2.7", Method: "direct-tcpip", Target: "db1", Fields: map[string]any{"dest": "10.0.0.6:22"}}
	if err := l.Append(ok); err != nil {
		t.Fatal(err)
	}
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != records+1 {
		t.Fatalf("%d lines, want %d", len(lines), records+1)
	}
	for i, line := range lines {
		if len(line) > audit.MaxLine {
			t.Fatalf("line %d: %d bytes > MaxLine %d", i+1, len(line), audit.MaxLine)
		}
	}
	if n, err := audit.Verify(bytes.NewReader(data)); err != nil || n != records+1 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	if !bytes.Contains(lines[0], []byte("bytes cut]")) {
		t.Errorf("a cut line does not say so: %.300s", lines[0])
	}
	last := string(lines[len(lines)-1])
	for _, want := range []string{`"user":"alice"`, `"target":"db1"`, `"fields":{"dest":"10.0.0.6:22"}`} {
		if !strings.Contains(last, want) {
			t.Errorf("ordinary record changed: %s", last)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"alice", 64, "alice"},
		{"abcdef", 3, "abc…[3 bytes cut]"},
		{"aé", 2, "a…[2 bytes cut]"}, // never half a rune
		{"", 0, ""},
	} {
		got := audit.Truncate(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
