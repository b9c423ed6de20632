package bastion_test

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestStartupsPerSource: 100 connections from one address that never log
// in do not keep a user at another address out (max_startups 100 would
// have been full); the drops are audited once, not 90 times.
func TestStartupsPerSource(t *testing.T) {
	w := bstNewWorld(t, bstSetup{Users: []*bstUser{{Name: "alice"}}, Extra: "max_startups: 100\nmax_startups_per_source: 10\n"})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 50)}, Timeout: 10 * time.Second}
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for range 100 {
		c, err := d.Dial("tcp", w.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Every connection the bastion serves sends its version line; a
	// dropped one is closed without it.
	served := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 8)
		if n, _ := c.Read(buf); n > 0 && strings.HasPrefix(string(buf[:n]), "SSH-") {
			served++
		}
	}
	if served != 10 {
		t.Errorf("%d of 100 connections from one address were served, want max_startups_per_source 10", served)
	}
	r := w.ssh(w.totp("alice"), "-b", "127.0.0.51", "-T", "alice@bastion")
	if r.Err != nil || !strings.Contains(r.Out, "-  target") {
		t.Fatalf("a user at another address was starved: %v\n%s", r.Err, r.Out)
	}
	drops := w.find(map[string]any{"type": "refusal", "method": "max_startups_per_source", "source": "127.0.0.50"})
	if len(drops) != 1 {
		t.Fatalf("%d audit records of 90 drops from one source, want 1 (rate-limited)", len(drops))
	}
}
