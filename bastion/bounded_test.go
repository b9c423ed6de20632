package bastion_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
)

// auditLinesBounded fails when a line of the world's audit log is longer
// than audit.MaxLine.
func auditLinesBounded(t *testing.T, w *world) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(w.dir, "state", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(line) > audit.MaxLine {
			t.Errorf("audit line %d: %d bytes", i+1, len(line))
		}
	}
}

// TestChannelCap: 1,000 session channels on one connection: max_sessions
// (10 by default) are opened, the rest are refused with "resource
// shortage", one audit record says so; closing one makes room. Jumps
// count against max_channels (256), sessions included.
func TestChannelCap(t *testing.T) {
	w := newWorld(t, "")
	c, err := w.dial(t, "u1", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open, refused := openChannels(t, c, 1000, "session", nil)
	if len(open) != 10 || refused != 990 {
		t.Fatalf("%d sessions opened, %d refused; want 10 and 990", len(open), refused)
	}
	if n := strings.Count(w.audit(t), `"method":"channel-limit"`); n != 1 {
		t.Errorf("%d channel-limit audit records, want 1", n)
	}
	open[0].Close()
	var ch gossh.Channel
	for range 100 { // the close reaches the server's handler asynchronously
		if ch, _, err = c.OpenChannel("session", nil); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no room after closing a channel: %v", err)
	}
	defer ch.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	jumps, refused := openChannels(t, c, 300, "direct-tcpip", gossh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"127.0.0.1", port, "127.0.0.1", 1}))
	for _, ch := range jumps {
		defer ch.Close()
	}
	if len(jumps) != 256-10 || refused != 300-246 {
		t.Errorf("%d jumps opened, %d refused; want 246 (max_channels 256 less 10 sessions) and 54", len(jumps), refused)
	}
	auditLinesBounded(t, w)
}

// openChannels opens n channels of type typ with payload on c, and returns
// those opened (left open) and how many were refused with "resource
// shortage". Any other error fails t.
func openChannels(t *testing.T, c *gossh.Client, n int, typ string, payload []byte) (open []gossh.Channel, refused int) {
	t.Helper()
	for range n {
		ch, reqs, err := c.OpenChannel(typ, payload)
		var oce *gossh.OpenChannelError
		switch {
		case err == nil:
			go gossh.DiscardRequests(reqs)
			open = append(open, ch)
		case errors.As(err, &oce) && oce.Reason == gossh.ResourceShortage:
			refused++
		default:
			t.Fatalf("open %s channel: %v", typ, err)
		}
	}
	return open, refused
}

// TestLongUserName: a 200,000-byte user name is refused before it is
// kept, and writes one bounded audit line per attempt.
func TestLongUserName(t *testing.T) {
	w := newWorld(t, "")
	before := len(w.audit(t))
	long := strings.Repeat("a", 200000)
	if _, err := w.dial(t, long, w.user, currentCode); err == nil {
		t.Fatal("logged in with a 200,000-byte user name")
	}
	grew := len(w.audit(t)) - before
	if grew <= 0 || grew > 2*audit.MaxLine {
		t.Errorf("the audit log grew by %d bytes", grew)
	}
	if !strings.Contains(w.audit(t), "user name of 200000 bytes (at most 256)") {
		t.Errorf("refusal not audited:\n%s", w.audit(t))
	}
	auditLinesBounded(t, w)
}

// TestSessionRequestsBounded: a subsystem other than sftp is refused and
// audited; environment requests past 64 are refused, audited once.
func TestSessionRequestsBounded(t *testing.T) {
	w := newWorld(t, "")
	c, err := w.dial(t, "u1", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestSubsystem("netconf"); err == nil {
		t.Error("subsystem netconf accepted")
	}
	s.Close()
	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refused := 0
	for i := range 200 {
		if err := s.Setenv("V"+strings.Repeat("x", i), "1"); err != nil {
			refused++
		}
	}
	if refused != 200-64 {
		t.Errorf("%d env requests refused, want %d", refused, 200-64)
	}
	if err := s.Setenv("BIG", strings.Repeat("x", 5000)); err == nil {
		t.Error("a 5,000-byte env request accepted")
	}
	a := w.audit(t)
	if !strings.Contains(a, `subsystem \"netconf\" is not served`) {
		t.Errorf("subsystem refusal not audited:\n%s", a)
	}
	if n := strings.Count(a, `"method":"env"`); n != 1 {
		t.Errorf("%d env refusal records, want 1", n)
	}
	auditLinesBounded(t, w)
}

// TestLongAnswer: a 100,000-byte keyboard-interactive answer is refused as
// malformed; the answer itself never reaches the audit log.
func TestLongAnswer(t *testing.T) {
	w := newWorld(t, "")
	long := strings.Repeat("7", 100000)
	if _, err := w.dial(t, "u2", w.user, func() string { return long }); err == nil {
		t.Fatal("logged in with a 100,000-byte answer")
	}
	a := w.audit(t)
	if !strings.Contains(a, `"user":"u2"`) || !strings.Contains(a, `"result":"failure"`) {
		t.Errorf("refusal not audited:\n%s", a)
	}
	if strings.Contains(a, "7777777777") {
		t.Errorf("the answer reached the audit log")
	}
	auditLinesBounded(t, w)
}

// TestRefusalsAuditedPerConnectionBounded: 200 refused channel opens and
// 200 refused global requests on one connection write 64 audit records,
// the last saying that the rest are counted in metrics only.
func TestRefusalsAuditedPerConnectionBounded(t *testing.T) {
	w := newWorld(t, "")
	c, err := w.dial(t, "u3", w.user, currentCode)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 200 {
		if _, _, err := c.OpenChannel("x11", nil); err == nil {
			t.Fatal("x11 channel opened")
		}
		if ok, _, _ := c.SendRequest("tcpip-forward", true, gossh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0})); ok {
			t.Fatal("tcpip-forward accepted")
		}
	}
	a := w.audit(t)
	if n := strings.Count(a, `"type":"refusal","user":"u3"`); n != 64 {
		t.Errorf("%d refusal records, want 64", n)
	}
	if !strings.Contains(a, "refusal 64 on this connection: later ones are counted in rampart_bastion_refusals_total only") {
		t.Errorf("the last audited refusal does not say so")
	}
	auditLinesBounded(t, w)
}
