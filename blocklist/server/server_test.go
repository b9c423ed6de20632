package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/feed"
)

func TestSyncFullThenDeltaThenLongPoll(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	agent := &agentView{c: h.client("agent-1", RoleAgent)}

	if err := admin.Ban(ctx, pfx("192.0.2.0/24"), 0, "test"); err != nil {
		t.Fatal(err)
	}
	if u := agent.sync(t, time.Second); !u.Full {
		t.Fatalf("first sync not full: %+v", u)
	}
	if got := agent.list(); !slices.Equal(got, []string{"192.0.2.0/24"}) {
		t.Fatalf("agent holds %v", got)
	}
	// A long poll waiting for the next change is woken by it.
	done := make(chan client.Update, 1)
	go func() {
		u, err := agent.c.Sync(ctx, agent.version, time.Minute)
		if err != nil {
			t.Error(err)
		}
		done <- u
	}()
	time.Sleep(100 * time.Millisecond)
	if err := admin.Ban(ctx, pfx("2001:db8::/48"), time.Hour, "v6"); err != nil {
		t.Fatal(err)
	}
	u := <-done
	if u.Full || len(u.Add) != 1 || u.Add[0] != pfx("2001:db8::/48") || len(u.Remove) != 0 {
		t.Fatalf("woken with %+v, want a delta adding 2001:db8::/48", u)
	}
	// Nothing new: the poll returns unchanged after its wait.
	agent.sync(t, 0)
	if u := agent.sync(t, 50*time.Millisecond); u.Version != agent.version || u.Full || len(u.Add)+len(u.Remove) != 0 {
		t.Fatalf("idle poll = %+v", u)
	}
	if err := admin.Unban(ctx, pfx("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	agent.sync(t, time.Second)
	if got := agent.list(); !slices.Equal(got, []string{"2001:db8::/48"}) {
		t.Fatalf("after unban agent holds %v", got)
	}
	// A new agent gets the same set in one full snapshot.
	fresh := &agentView{c: h.client("agent-2", RoleAgent)}
	fresh.sync(t, time.Second)
	if !slices.Equal(fresh.list(), agent.list()) || fresh.version != agent.version {
		t.Fatalf("fresh agent %v@%d, old agent %v@%d", fresh.list(), fresh.version, agent.list(), agent.version)
	}
}

func TestReportsThresholdAndRepeatOffenders(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 5, Window: 10 * time.Minute, BanTTL: time.Hour, MaxBanTTL: 3 * time.Hour}})
	ctx := context.Background()
	host1 := h.client("host-1", RoleReporter)
	host2 := h.client("host-2", RoleReporter)
	agent := &agentView{c: h.client("agent", RoleAgent)}
	addr := netip.MustParseAddr("203.0.113.7")
	report := func(c *client.Client, n int) {
		t.Helper()
		if err := c.Report(ctx, client.Report{Addr: addr, Reason: "sshd", Count: n, Window: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	wantTTL := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour}
	for offence, ttl := range wantTTL {
		report(host1, 2)
		report(host2, 2) // fleet-wide: 4 of 5
		agent.sync(t, 0)
		if agent.set[pfx("203.0.113.7/32")] {
			t.Fatalf("offence %d: banned below the threshold", offence+1)
		}
		report(host1, 1)
		agent.sync(t, time.Second)
		if !agent.set[pfx("203.0.113.7/32")] {
			t.Fatalf("offence %d: not banned at the threshold", offence+1)
		}
		l, err := h.client("admin", RoleAdmin).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Decisions) != 1 || l.Decisions[0].Expires.Sub(l.Decisions[0].Created) != ttl {
			t.Fatalf("offence %d: decisions %+v, want one with ttl %v", offence+1, l.Decisions, ttl)
		}
		// Let the ban and the reports age out.
		h.clock.add(ttl + time.Second)
		if err := h.srv.eng.expire(ctx); err != nil {
			t.Fatal(err)
		}
		agent.sync(t, time.Second)
		if agent.set[pfx("203.0.113.7/32")] {
			t.Fatalf("offence %d: ban did not expire", offence+1)
		}
	}
}

func TestIPv6ReportsWidenedTo64(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 2}})
	ctx := context.Background()
	r := h.client("host", RoleReporter)
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if err := r.Report(ctx, client.Report{Addr: netip.MustParseAddr(a), Reason: "nginx", Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, time.Second)
	if got := agent.list(); !slices.Equal(got, []string{"2001:db8:1:2::/64"}) {
		t.Fatalf("agent holds %v, want the /64", got)
	}
}

func TestAllowlistedReportedThousandTimesNeverBlocked(t *testing.T) {
	h := newHarness(t, Config{Allow: []netip.Prefix{pfx("198.51.100.0/24")}, ReportRate: 1e6, ReportBurst: 1e6})
	ctx := context.Background()
	r := h.client("host", RoleReporter)
	for range 1000 {
		if err := r.Report(ctx, client.Report{Addr: netip.MustParseAddr("198.51.100.10"), Reason: "sshd", Count: 5}); err != nil {
			t.Fatal(err)
		}
	}
	// Even a manual ban of a wider prefix leaves the allowlisted part out.
	admin := h.client("admin", RoleAdmin)
	if err := admin.Ban(ctx, pfx("198.51.0.0/16"), 0, "wide"); err != nil {
		t.Fatal(err)
	}
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, time.Second)
	for p := range agent.set {
		if p.Overlaps(pfx("198.51.100.0/24")) {
			t.Fatalf("published %v overlaps the allowlist", p)
		}
	}
	if len(agent.set) != 8 { // 198.51.0.0/16 minus a /24 is 8 prefixes
		t.Fatalf("published %v", agent.list())
	}
	l, _ := admin.List(ctx)
	for _, d := range l.Decisions {
		if d.Source == SourceReport {
			t.Fatalf("a report decision exists: %+v", d)
		}
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t, Config{})
	admin := h.client("admin", RoleAdmin)
	reporter := h.client("host", RoleReporter)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		log  string
	}{
		{"malformed JSON", func() error { return post(h, "host", RoleReporter, "/v1/report", `{"addr":`) }, "malformed JSON"},
		{"unknown field", func() error {
			return post(h, "host", RoleReporter, "/v1/report", `{"addr":"192.0.2.1","count":1,"evil":1}`)
		}, "unknown field"},
		{"trailing data", func() error { return post(h, "host", RoleReporter, "/v1/report", `{"addr":"192.0.2.1","count":1}{}`) }, "data after"},
		{"oversized body", func() error {
			return post(h, "host", RoleReporter, "/v1/report", `{"addr":"192.0.2.1","count":1,"reason":"`+strings.Repeat("x", 10000)+`"}`)
		}, "larger than"},
		{"invalid address", func() error { return post(h, "host", RoleReporter, "/v1/report", `{"addr":"999.1.1.1","count":1}`) }, "not an IP address"},
		{"unspecified address", func() error {
			return reporter.Report(ctx, client.Report{Addr: netip.MustParseAddr("0.0.0.0"), Reason: "x", Count: 1})
		}, "unspecified"},
		{"zero count", func() error {
			return reporter.Report(ctx, client.Report{Addr: netip.MustParseAddr("192.0.2.1"), Reason: "x", Count: 0})
		}, "count 0"},
		{"ban 0.0.0.0/0", func() error { return admin.Ban(ctx, pfx("0.0.0.0/0"), 0, "") }, "broader than the policy"},
		{"ban ::/0", func() error { return admin.Ban(ctx, pfx("::/0"), 0, "") }, "broader than the policy"},
		{"allow 0.0.0.0/0", func() error { return admin.Allow(ctx, pfx("0.0.0.0/0"), "") }, "allow: 0.0.0.0/0 is broader"},
		{"ban host bits", func() error { return post(h, "admin", RoleAdmin, "/v1/admin/ban", `{"prefix":"10.1.2.3/8"}`) }, "host bits"},
		{"ban bad ttl", func() error {
			return post(h, "admin", RoleAdmin, "/v1/admin/ban", `{"prefix":"10.0.0.0/8","ttl":"soon"}`)
		}, "ttl"},
		{"reporter cannot ban", func() error { return h.client("host", RoleReporter).Ban(ctx, pfx("192.0.2.1/32"), 0, "") }, "lacks role"},
		{"agent cannot report", func() error {
			return h.client("agent", RoleAgent).Report(ctx, client.Report{Addr: netip.MustParseAddr("192.0.2.1"), Count: 1})
		}, "lacks role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var se *client.StatusError
			if !errors.As(err, &se) || se.Code < 400 || se.Code >= 500 {
				t.Fatalf("err = %v, want a 4xx", err)
			}
			if !strings.Contains(h.logs.String(), tc.log) {
				t.Fatalf("log lacks %q:\n%s", tc.log, h.logs.String())
			}
		})
	}
	// Nothing was stored, and the server still works.
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, time.Second)
	if len(agent.set) != 0 {
		t.Fatalf("rejected requests published %v", agent.list())
	}
}

// post sends a raw body with a certificate of the given role, for requests
// the typed client cannot produce.
func post(h *harness, name, role, path, body string) error {
	c := h.client(name, role)
	_ = c
	cert, err := h.ca.TLSCert(devcertLeaf(name, role))
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsClientConfig(h, cert)}}
	resp, err := hc.Post(h.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &client.StatusError{Code: resp.StatusCode}
}

func TestClientCertificateChecks(t *testing.T) {
	h := newHarness(t, Config{})
	other, err := newOtherCAClient(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Sync(context.Background(), 0, time.Second); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	none, err := client.New(client.Config{URL: h.url, TLS: tlsClientConfigNoCert(h)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Sync(context.Background(), 0, time.Second); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	noRole := h.client("norole")
	if _, err := noRole.Sync(context.Background(), 0, time.Second); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("certificate without roles: err = %v, want ErrForbidden", err)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 1}})
	ctx := context.Background()
	admin := h.client("admin", RoleAdmin)
	if err := admin.Ban(ctx, pfx("192.0.2.0/24"), 48*time.Hour, "manual"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Allow(ctx, pfx("192.0.2.128/25"), "office"); err != nil {
		t.Fatal(err)
	}
	if err := h.client("r", RoleReporter).Report(ctx, client.Report{Addr: netip.MustParseAddr("203.0.113.1"), Reason: "x", Count: 1}); err != nil {
		t.Fatal(err)
	}
	before := &agentView{c: h.client("agent", RoleAgent)}
	before.sync(t, time.Second)
	lb, _ := admin.List(ctx)
	h.stop()
	h.start(Config{Policy: Policy{Threshold: 1}})
	after := &agentView{c: h.client("agent", RoleAgent)}
	after.sync(t, time.Second)
	la, err := h.client("admin", RoleAdmin).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before.list(), after.list()) || len(la.Decisions) != len(lb.Decisions) || len(la.Allow) != 1 {
		t.Fatalf("before restart %v %d decisions; after %v %d decisions, allow %v", before.list(), len(lb.Decisions), after.list(), len(la.Decisions), la.Allow)
	}
	if !slices.Equal(after.list(), []string{"192.0.2.0/25", "203.0.113.1/32"}) {
		t.Fatalf("after restart agent holds %v", after.list())
	}
}

func TestFeeds(t *testing.T) {
	var body atomic.Value
	body.Store("10.0.0.0/8\n192.0.2.1\nbogus line\n0.0.0.0/1\n")
	var fetches atomic.Int32
	fsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		b := body.Load().(string)
		etag := fmt.Sprintf(`"%d"`, len(b))
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		fmt.Fprint(w, b)
	}))
	defer fsrv.Close()
	h := newHarness(t, Config{Feeds: []feed.Feed{{Name: "test", URL: fsrv.URL, Interval: 50 * time.Millisecond}}})
	agent := &agentView{c: h.client("agent", RoleAgent)}
	waitFor(t, func() bool { agent.sync(t, time.Second); return len(agent.set) > 0 })
	// 192.0.2.1 is not covered by 10/8: both published; the rest rejected.
	if got := agent.list(); !slices.Equal(got, []string{"10.0.0.0/8", "192.0.2.1/32"}) {
		t.Fatalf("agent holds %v", got)
	}
	body.Store("192.0.2.1\n10.1.0.0/16\n")
	waitFor(t, func() bool { agent.sync(t, time.Second); return !agent.set[pfx("10.0.0.0/8")] })
	if got := agent.list(); !slices.Equal(got, []string{"10.1.0.0/16", "192.0.2.1/32"}) {
		t.Fatalf("after the feed changed agent holds %v", got)
	}
	if !strings.Contains(h.logs.String(), "feed line rejected") {
		t.Fatal("rejected feed lines were not logged")
	}
	// A feed removed from the config takes its decisions with it.
	h.stop()
	h.start(Config{})
	fresh := &agentView{c: h.client("agent", RoleAgent)}
	fresh.sync(t, time.Second)
	if len(fresh.set) != 0 {
		t.Fatalf("decisions of a removed feed survived: %v", fresh.list())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPerReporterRateLimit(t *testing.T) {
	h := newHarness(t, Config{ReportRate: 0.001, ReportBurst: 3, Policy: Policy{Threshold: 1000}})
	ctx := context.Background()
	rep := func(c *client.Client) error {
		return c.Report(ctx, client.Report{Addr: netip.MustParseAddr("203.0.113.3"), Reason: "x", Count: 1})
	}
	noisy, quiet := h.client("noisy", RoleReporter), h.client("quiet", RoleReporter)
	for i := range 3 {
		if err := rep(noisy); err != nil {
			t.Fatalf("report %d: %v", i+1, err)
		}
	}
	if err := rep(noisy); !errors.Is(err, client.ErrRateLimited) {
		t.Fatalf("4th report: err = %v, want ErrRateLimited", err)
	}
	// Limits are per reporter.
	if err := rep(quiet); err != nil {
		t.Fatalf("another reporter was limited: %v", err)
	}
	// Time refills the bucket.
	h.clock.add(time.Hour)
	if err := rep(noisy); err != nil {
		t.Fatalf("after an hour: %v", err)
	}
}

// A long poll outlives the server's header timeout (10s): no read deadline
// may cut it short (net/http cancels a request whose read deadline passes).
func TestLongPollOutlivesHeaderTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 11s")
	}
	h := newHarness(t, Config{})
	agent := &agentView{c: h.client("agent", RoleAgent)}
	agent.sync(t, time.Second)
	u, err := agent.c.Sync(context.Background(), agent.version, 11*time.Second)
	if err != nil {
		t.Fatalf("11s long poll: %v", err)
	}
	if u.Version != agent.version || u.Full {
		t.Fatalf("idle long poll answered %+v", u)
	}
}

// Reports that cross the threshold at the same moment make one ban, one
// offence: counting happens outside the report lock (so bbolt commits
// can be shared), the ban decision inside it.
func TestConcurrentReportsCrossingThresholdBanOnce(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 4, Window: 10 * time.Minute, BanTTL: time.Hour, MaxBanTTL: time.Hour}})
	ctx := context.Background()
	for round := range 10 {
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + round)})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			c := h.client(fmt.Sprintf("host-%d-%d", round, i), RoleReporter)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- c.Report(ctx, client.Report{Addr: a, Reason: "sshd", Count: 1})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		key := netip.PrefixFrom(a, 32)
		h.srv.eng.mu.RLock()
		off := h.srv.eng.offenders[key]
		_, banned := h.srv.eng.decisions[decKey{key, SourceReport}]
		h.srv.eng.mu.RUnlock()
		if !banned || off.Bans != 1 {
			t.Fatalf("round %d: 16 reports at once over a threshold of 4: banned %v, offences %d, want one ban, one offence", round, banned, off.Bans)
		}
	}
}
