package firewall_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/test/testenv"
)

// TestPacketPath proves the block on the wire: a server namespace applies
// a list naming two clients, one of them allowlisted; the blocked client's
// TCP connects fail (dropped, then rejected) and the allowlisted one's
// succeed, over IPv4 and IPv6, until flush.
func TestPacketPath(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Binary(t, "nft")
	bin := agent(t)
	server, bad, good := testenv.NewHost(t), testenv.NewHost(t), testenv.NewHost(t)
	lbad := testenv.Connect(t, bad, server)
	lgood := testenv.Connect(t, good, server)

	var dialTimeout func(*testenv.Host, netip.Addr, time.Duration) error
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp", "[::]:7070")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	dial := func(from *testenv.Host, to netip.Addr) error { return dialTimeout(from, to, 2*time.Second) }
	dialTimeout = func(from *testenv.Host, to netip.Addr, timeout time.Duration) error {
		start := time.Now()
		defer func() { t.Logf("dial %s took %v", to, time.Since(start)) }()
		return from.Do(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(to, 7070).String(), timeout)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	targets := []struct {
		from *testenv.Host
		name string
		to   netip.Addr
	}{
		{bad, "blocked v4", lbad.B4}, {bad, "blocked v6", lbad.B6},
		{good, "allowlisted v4", lgood.B4}, {good, "allowlisted v6", lgood.B6},
	}
	for _, tg := range targets {
		if err := dial(tg.from, tg.to); err != nil {
			t.Fatalf("%s: no connection even before blocking: %v", tg.name, err)
		}
	}

	list := writeFile(t, filepath.Join(t.TempDir(), "list.txt"), fmt.Sprintf(
		"# both clients are listed; the good one is allowlisted\n%s\n%s/30\n%s\n%s/64 ; whole link\n",
		lbad.A4, netip.PrefixFrom(lgood.A4, 30).Masked().Addr(), lbad.A6, netip.PrefixFrom(lgood.A6, 64).Masked().Addr()))
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("blocklist-agent %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	summary := run("apply", "--netns", server.Path(), "--file", list, "--allow", lgood.A4.String(), "--allow", lgood.A6.String())
	if !strings.Contains(summary, "2 allowlisted, 0 refused as too broad, 0 rejected lines") {
		t.Errorf("summary: %s", summary)
	}
	for _, tg := range targets {
		err := dial(tg.from, tg.to)
		if strings.HasPrefix(tg.name, "blocked") && err == nil {
			t.Errorf("%s: connected through the block", tg.name)
		}
		if strings.HasPrefix(tg.name, "allowlisted") && err != nil {
			t.Errorf("%s: %v", tg.name, err)
		}
	}

	// With --reject the blocked client hears about it instead of timing
	// out. The first ICMP error may be rate-limited (IPv6 sends at most one
	// per second per destination), so allow for SYN retransmissions.
	run("apply", "--netns", server.Path(), "--reject", "--file", list, "--allow", lgood.A4.String(), "--allow", lgood.A6.String())
	for _, tg := range targets[:2] {
		err := dialTimeout(tg.from, tg.to, 10*time.Second)
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("%s with --reject: %v, want an immediate refusal", tg.name, err)
		}
	}

	run("flush", "--netns", server.Path())
	for _, tg := range targets {
		if err := dial(tg.from, tg.to); err != nil {
			t.Errorf("%s after flush: %v", tg.name, err)
		}
	}
}
