package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion/audit"
)

func fixedClock() func() time.Time {
	t := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func writeLog(t *testing.T, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(p, audit.Options{Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(audit.Record{Type: audit.TypeAuth, User: fmt.Sprintf("u%d", i), Source: "192.0.2.1", Method: "totp", Result: audit.ResultFailure, Reason: "mfa: wrong code"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChainVerifiesAndSurvivesReopen(t *testing.T) {
	p := writeLog(t, 3)
	l, err := audit.Open(p, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Append(audit.Record{Type: audit.TypeJump, User: "alice", Target: "web1", BytesIn: 10, BytesOut: 20, Duration: 1.5, Result: audit.ResultSuccess})
	l.Close()
	f, _ := os.Open(p)
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if !strings.Contains(lines[0], `"prev":"`+audit.Genesis+`"`) {
		t.Errorf("first record does not start from the genesis hash: %s", lines[0])
	}
	for _, field := range []string{`"type":"jump"`, `"user":"alice"`, `"target":"web1"`, `"bytes_in":10`, `"bytes_out":20`, `"duration_s":1.5`, `"result":"success"`} {
		if !strings.Contains(lines[3], field) {
			t.Errorf("jump record lacks %s: %s", field, lines[3])
		}
	}
}

func TestVerifyFindsTheFirstBadLine(t *testing.T) {
	p := writeLog(t, 5)
	good, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	edit := func(i int, f func(string) string) string {
		c := append([]string(nil), lines...)
		c[i] = f(c[i])
		return strings.Join(c, "\n") + "\n"
	}
	tests := []struct {
		name     string
		log      string
		wantLine int
		wantMsg  string
	}{
		{"edited field", edit(2, func(s string) string { return strings.Replace(s, `"u2"`, `"u9"`, 1) }), 3, "does not match its hash"},
		{"deleted record", strings.Join(append(append([]string{}, lines[:1]...), lines[2:]...), "\n"), 2, "does not match the previous record"},
		{"swapped records", strings.Join([]string{lines[0], lines[2], lines[1], lines[3], lines[4]}, "\n"), 2, "does not match the previous record"},
		{"rehashed forgery", edit(1, func(s string) string {
			// Recompute the edited line's own hash: the next line's prev
			// still points at the original.
			i := strings.LastIndex(s, `,"hash":`)
			body := strings.Replace(s[:i]+"}", `"u1"`, `"ux"`, 1)
			rec := body[:len(body)-1]
			line, _, _ := sealRaw(rec)
			return line
		}), 3, "does not match the previous record"},
		{"garbage", edit(4, func(string) string { return "not json" }), 5, "no trailing"},
		{"first record not from genesis", strings.Join(lines[1:], "\n"), 1, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := audit.Verify(strings.NewReader(tt.log))
			var bad *audit.BadRecordError
			if !errors.As(err, &bad) || !errors.Is(err, audit.ErrBroken) {
				t.Fatalf("Verify error = %v, want a BadRecordError", err)
			}
			if bad.Line != tt.wantLine || !strings.Contains(bad.Reason, tt.wantMsg) {
				t.Fatalf("got line %d %q, want line %d containing %q", bad.Line, bad.Reason, tt.wantLine, tt.wantMsg)
			}
		})
	}
}

// sealRaw hashes an object body (without its closing brace) the way Seal
// does, for forging tests.
func sealRaw(bodyNoBrace string) (string, string, error) {
	body := bodyNoBrace + "}"
	h := sha256Hex([]byte(body))
	return bodyNoBrace + `,"hash":"` + h + `"}`, h, nil
}

func TestEventMapsKnownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	l, _ := audit.Open(p, audit.Options{})
	l.Event(audit.TypeSession, map[string]any{"user": "alice", "target": "db", "session": "s1", "method": "recorded.start", "bytes": 12})
	l.Close()
	data, _ := os.ReadFile(p)
	for _, want := range []string{`"type":"session"`, `"user":"alice"`, `"target":"db"`, `"session":"s1"`, `"method":"recorded.start"`, `"fields":{"bytes":12}`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("missing %s in %s", want, data)
		}
	}
}

func TestOpenRefusesDamagedTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	os.WriteFile(p, []byte("{\"type\":\"auth\"}\n"), 0o600)
	if _, err := audit.Open(p, audit.Options{}); err == nil {
		t.Fatal("Open continued a chain from a line without a hash")
	}
}

func TestSyslogForwarderSendsRFC5424OverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{testCert(t, srv)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for range 2 {
			// RFC 5425 octet counting: "LEN SP MSG".
			lenStr, err := r.ReadString(' ')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(lenStr))
			buf := make([]byte, n)
			if _, err := ioReadFull(r, buf); err != nil {
				return
			}
			got <- string(buf)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := certPool(t, srv)
	fwd := audit.NewSyslogForwarder(ctx, audit.SyslogConfig{Addr: ln.Addr().String(), TLS: &tls.Config{RootCAs: pool, ServerName: "example.com"}, Hostname: "bastion1"})
	p := filepath.Join(t.TempDir(), "a.jsonl")
	l, _ := audit.Open(p, audit.Options{Sinks: []audit.Sink{fwd}})
	l.Append(audit.Record{Type: audit.TypeAuth, User: "alice", Result: audit.ResultSuccess})
	l.Append(audit.Record{Type: audit.TypeRefusal, User: "alice", Reason: "x11"})
	l.Close()
	for i := range 2 {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, "<85>1 ") || !strings.Contains(m, " bastion1 bastion ") || !strings.Contains(m, " audit - {") {
				t.Errorf("message %d is not RFC 5424 as expected: %q", i, m)
			}
			if !strings.Contains(m, `"hash":"`) {
				t.Errorf("message %d lacks the record's hash: %q", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("collector received nothing")
		}
	}
}

// FuzzVerify: a damaged or hostile log never panics Verify, and a line it
// accepts really carries its own hash.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-22T04:00:00Z","type":"auth","prev":"` + audit.Genesis + `","hash":"00"}`))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"prev":"x","hash":"` + strings.Repeat("a", 64) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := audit.Verify(bytes.NewReader(data))
		if err == nil && n > 0 {
			first := strings.SplitN(string(data), "\n", 2)[0]
			if audit.CheckLine([]byte(first), audit.Genesis) != nil {
				t.Fatalf("Verify accepted a first line CheckLine refuses: %q", first)
			}
		}
	})
}
