package apply

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func noHost() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("203.0.113.1")}, nil }

func TestRun(t *testing.T) {
	drop := write(t, "drop.txt", "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n192.0.2.0/25\n10.0.0.0/7\n")
	netset := write(t, "level1.netset", "# FireHOL\n192.0.2.128/25\n203.0.113.1\nnope\n198.51.100.7\n")
	var fw firewalltest.Backend
	clock := time.Unix(0, 0)
	sum, err := Run(context.Background(), &fw, Config{
		Files:  []string{drop, netset, "-"},
		Stdin:  strings.NewReader("2001:db8::1\n"),
		Policy: firewall.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")}, HostAddrs: noHost},
		Now: func() time.Time {
			clock = clock.Add(1500 * time.Millisecond)
			return clock
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("1.10.16.0/20"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("2001:db8::1/128"),
	}
	if got := fw.Prefixes(); !slices.Equal(got, want) {
		t.Errorf("enforced %v, want %v", got, want)
	}
	var rejected []string
	for _, r := range sum.Rejected {
		rejected = append(rejected, filepath.Base(r.File)+":"+itoa(r.Line))
	}
	if want := []string{"drop.txt:4", "level1.netset:4"}; !slices.Equal(rejected, want) {
		t.Errorf("rejected %v, want %v", rejected, want)
	}
	if got, want := sum.String(), "1 addresses, 2 prefixes after merging, 2 allowlisted, 0 refused as too broad, 2 rejected lines, 1.5s"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if sum.Files != 3 || sum.Lines != 10 {
		t.Errorf("files %d lines %d", sum.Files, sum.Lines)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRunMissingFileTouchesNothing(t *testing.T) {
	var fw firewalltest.Backend
	_, err := Run(context.Background(), &fw, Config{Files: []string{filepath.Join(t.TempDir(), "absent.txt")}})
	if err == nil || !strings.Contains(err.Error(), "absent.txt") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
	if calls := fw.Calls(); len(calls) != 0 {
		t.Errorf("backend called: %v", calls)
	}
}

func TestRunBackendError(t *testing.T) {
	fw := &firewalltest.Backend{Err: errors.New("netlink: operation not permitted")}
	_, err := Run(context.Background(), fw, Config{Files: []string{write(t, "l", "192.0.2.1\n")}, Policy: firewall.Policy{HostAddrs: noHost}})
	if err == nil {
		t.Fatal("backend failure not reported")
	}
}

func TestRunStdinTwice(t *testing.T) {
	var fw firewalltest.Backend
	if _, err := Run(context.Background(), &fw, Config{Files: []string{"-", "-"}, Stdin: strings.NewReader("")}); err == nil {
		t.Fatal("stdin read twice")
	}
}

func TestOpenBackend(t *testing.T) {
	if _, err := OpenBackend("iptables", BackendOptions{}); err == nil {
		t.Error("unknown backend accepted")
	}
	if _, err := OpenBackend("pf", BackendOptions{Reject: true}); err == nil {
		t.Error("--reject accepted for pf")
	}
	if _, err := OpenBackend("pf", BackendOptions{}); err != nil {
		t.Error(err)
	}
}

func TestFlush(t *testing.T) {
	var fw firewalltest.Backend
	if err := Flush(context.Background(), &fw); err != nil {
		t.Fatal(err)
	}
	if c := fw.Calls(); len(c) != 1 || c[0].Method != "Remove" {
		t.Errorf("calls %v", c)
	}
}
