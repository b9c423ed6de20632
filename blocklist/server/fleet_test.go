package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/store"
)

// An agent's certificate IP SANs make its addresses fleet hosts: banning
// them is refused unless forced, reports of them are ignored, and
// blocklistd remembers them across a restart.
func TestFleetHostsRefusedUnlessForced(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 1}})
	ctx := context.Background()
	web1 := func() *client.Client {
		cert, err := h.ca.TLSCert(devcert.Leaf{Name: "web1", Roles: []string{RoleAgent}, Hosts: []string{"web1.internal", "10.0.0.5", "2001:db8:5::5"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Config{URL: h.url, TLS: &tls.Config{RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{cert}}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := h.client("admin", RoleAdmin)
	// Before the agent connects, nothing is known.
	if err := admin.Ban(ctx, pfx("10.0.0.6/32"), time.Hour, "before"); err != nil {
		t.Fatal(err)
	}
	if _, err := web1().Sync(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, p := range []string{"10.0.0.5/32", "10.0.0.0/24", "2001:db8:5::/48"} {
			err := admin.Ban(ctx, pfx(p), 0, "oops")
			if !errors.Is(err, client.ErrRejected) || !strings.Contains(err.Error(), `fleet host "web1"`) || !strings.Contains(err.Error(), "409") {
				t.Fatalf("%s: ban %s: %v", when, p, err)
			}
		}
		l, err := admin.ListFiltered(ctx, client.ListFilter{Prefix: pfx("10.0.0.5/32")})
		if err != nil || len(l.Decisions) != 0 {
			t.Fatalf("%s: a refused ban was recorded: %+v %v", when, l.Decisions, err)
		}
	}
	check("after the agent's first sync")
	fl, err := admin.Fleet(ctx)
	if err != nil || len(fl) != 2 || fl[0].Addr != "10.0.0.5" || fl[0].Name != "web1" {
		t.Fatalf("fleet %+v %v", fl, err)
	}
	rep := h.client("bastion", RoleReporter)
	for range 3 {
		if err := rep.Report(ctx, client.Report{Addr: netip.MustParseAddr("10.0.0.5"), Reason: "sshd", Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := admin.List(ctx); slices.ContainsFunc(l.Decisions, func(d client.Decision) bool { return d.Prefix == pfx("10.0.0.5/32") }) {
		t.Fatal("reports banned a fleet host")
	}
	// Remembered across a restart (written in the background: wait).
	waitFor(t, func() bool {
		hs, err := h.srv.st.(store.FleetStore).FleetHosts(ctx, time.Time{})
		return err == nil && len(hs) == 2
	})
	h.stop()
	h.start(Config{Policy: Policy{Threshold: 1}})
	admin = h.client("admin", RoleAdmin)
	check("after a restart")
	if err := admin.Ban(ctx, pfx("10.0.0.5/32"), time.Hour, "compromised", client.Force()); err != nil {
		t.Fatalf("forced ban: %v", err)
	}
	if !strings.Contains(h.logs.String(), "forced=true") {
		t.Fatal("forced ban not logged as forced")
	}
}

// list --source --prefix --limit, done by the server.
func TestListFilters(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	for _, p := range []string{"192.0.2.0/24", "192.0.2.7/32", "198.51.100.1/32", "198.51.100.2/32", "2001:db8::/48"} {
		if err := admin.Ban(ctx, pfx(p), 0, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Allow(ctx, pfx("192.0.2.9/32"), "office"); err != nil {
		t.Fatal(err)
	}
	names := func(l client.Listing) string {
		var out []string
		for _, d := range l.Decisions {
			out = append(out, d.Prefix.String())
		}
		for _, a := range l.Allow {
			out = append(out, "allow:"+a.Prefix.String())
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		f     client.ListFilter
		want  string
		total int
	}{
		{client.ListFilter{}, "192.0.2.0/24 192.0.2.7/32 198.51.100.1/32 198.51.100.2/32 2001:db8::/48 allow:192.0.2.9/32", 5},
		{client.ListFilter{Prefix: pfx("192.0.2.7/32")}, "192.0.2.0/24 192.0.2.7/32", 2},
		{client.ListFilter{Prefix: pfx("198.51.100.0/24")}, "198.51.100.1/32 198.51.100.2/32", 2},
		{client.ListFilter{Limit: 2}, "192.0.2.0/24 192.0.2.7/32 allow:192.0.2.9/32", 5},
		{client.ListFilter{Source: "manual", Limit: 1}, "192.0.2.0/24", 5},
		{client.ListFilter{Source: "feed:"}, "", 0},
		{client.ListFilter{Source: "allow"}, "allow:192.0.2.9/32", 0},
		{client.ListFilter{Source: "report"}, "", 0},
	} {
		l, err := admin.ListFiltered(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(l); got != tc.want || l.Total != tc.total {
			t.Errorf("%+v: got %q total %d, want %q total %d", tc.f, got, l.Total, tc.want, tc.total)
		}
	}
}
