package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion/audit"
)

// The reader returns exactly what was appended, each record with the
// hash the log chained it with, and stops at the first tampered line.
func TestReaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	var users []string
	for i := 0; i < 200; i++ {
		u := fmt.Sprintf("user%d", rng.IntN(20))
		if err := l.Append(audit.Record{Type: audit.TypeAuth, User: u, Source: "192.0.2.7", Result: audit.ResultFailure,
			Fields: map[string]any{"n": i, "note": strings.Repeat("x", rng.IntN(50))}}); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
		hashes = append(hashes, l.LastHash())
	}
	l.Close()
	data, _ := os.ReadFile(path)

	r := audit.NewReader(bytes.NewReader(data))
	prev := audit.Genesis
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			if i != len(hashes) {
				t.Fatalf("EOF after %d records, wrote %d", i, len(hashes))
			}
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		if rec.Hash != hashes[i] || rec.Prev != prev || rec.User != users[i] {
			t.Fatalf("record %d: hash %s prev %s user %s; want %s %s %s", i+1, rec.Hash, rec.Prev, rec.User, hashes[i], prev, users[i])
		}
		prev = rec.Hash
	}

	// Tamper with a random line: the reader returns the records before
	// it, then the break (the same line Verify names), then nothing more.
	lines := bytes.SplitAfter(data, []byte("\n"))
	k := rng.IntN(len(hashes))
	lines[k] = bytes.Replace(lines[k], []byte(`"user":"`), []byte(`"user":"x`), 1)
	bad := bytes.Join(lines, nil)
	r = audit.NewReader(bytes.NewReader(bad))
	n := 0
	for {
		_, err := r.Next()
		if err == nil {
			n++
			continue
		}
		var be *audit.BadRecordError
		if !errors.As(err, &be) || !errors.Is(err, audit.ErrBroken) || be.Line != k+1 || n != k {
			t.Fatalf("tampered line %d: after %d records got %v", k+1, n, err)
		}
		if _, again := r.Next(); again != err {
			t.Fatalf("Next after a break: %v", again)
		}
		break
	}
	if vn, verr := audit.Verify(bytes.NewReader(bad)); vn != k || verr == nil {
		t.Fatalf("Verify disagrees: %d, %v", vn, verr)
	}
}
