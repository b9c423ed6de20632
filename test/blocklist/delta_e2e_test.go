package blocklist_test

// Issue 12's reproducers at the fleet level, with the real binaries: a
// wider ban over a banned address, and a feed's /24 over a manual ban,
// must never unblock the narrower entry, neither when the wider one
// arrives nor when it goes. The agents follow by deltas (the sets are
// small), so the delta path is what is tested.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
	"github.com/rampart-sec/rampart/test/testenv"
)

func TestE2EDeltaNestedBans(t *testing.T) {
	f := newFleet(t)
	feedBody := &feedContent{body: "198.51.100.0/24\n203.0.113.0/24\n192.0.2.0/25\n100.64.0.0/24\n"}
	feedURL := serveFeed(t, f.srv, feedBody)
	f.startServers("")
	ctx := context.Background()
	agents := []*fleetAgent{f.newAgent(f.a, "agent-a", agentOpts{}), f.newAgent(f.b, "agent-b", agentOpts{})}
	for _, ag := range agents {
		f.start(ag)
	}
	admin := f.nsClient(f.srv, 0, "admin")
	reader := f.nsClient(f.srv, 0, "agent")
	addr := netip.MustParseAddr
	parse := func(s string) netip.Prefix {
		t.Helper()
		p, err := server.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ban := func(p string) {
		t.Helper()
		if err := admin.Ban(ctx, parse(p), 0, "issue 12"); err != nil {
			t.Fatalf("ban %s: %v", p, err)
		}
	}
	unban := func(p string) {
		t.Helper()
		if err := admin.Unban(ctx, parse(p)); err != nil {
			t.Fatalf("unban %s: %v", p, err)
		}
	}
	// settled waits until both agents enforce blocklistd's current version
	// and checks each kernel's set (nft -j) against a full replace of the
	// published entries.
	settled := func(what string) {
		t.Helper()
		u, err := reader.Sync(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		full, _, err := firewall.Policy{HostAddrs: func() ([]netip.Addr, error) { return nil, nil }}.Build(u.Entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, ag := range agents {
			f.waitStatus(ag, what, func(s agent.Status, _ bool) bool { return s.Version >= u.Version })
			got, err := nftSet(ag.host, "rampart")
			if err != nil {
				t.Fatal(err)
			}
			if ok, diff := firewalltest.Equal(got, full); !ok {
				t.Errorf("%s: %s: kernel differs from a full replace of %v: %s", what, ag.name, u.Entries, diff)
			}
		}
	}
	blocked := func(what string, a netip.Addr, want bool) {
		t.Helper()
		for _, ag := range agents {
			if got := enforced(t, ag.host, "rampart")(a); got != want {
				t.Errorf("%s: %s blocks %v = %v, want %v", what, ag.name, a, got, want)
			}
		}
	}

	t.Run("wider ban over a banned address", func(t *testing.T) {
		ban("10.77.0.94")
		waitEnforced(t, addr("10.77.0.94"), true, f.a, f.b)
		ban("10.77.0.92/30")
		waitEnforced(t, addr("10.77.0.93"), true, f.a, f.b)
		settled("ban .92/30")
		blocked("after ban 10.77.0.92/30", addr("10.77.0.94"), true)
		unban("10.77.0.92/30")
		waitEnforced(t, addr("10.77.0.93"), false, f.a, f.b)
		settled("unban .92/30")
		blocked("after unban 10.77.0.92/30", addr("10.77.0.94"), true)
		// And the other way round: the narrow ban lifted under a wide one.
		ban("10.77.0.92/30")
		waitEnforced(t, addr("10.77.0.93"), true, f.a, f.b)
		unban("10.77.0.94")
		settled("unban .94 under .92/30")
		blocked("after unban 10.77.0.94 under the /30", addr("10.77.0.94"), true)
	})

	t.Run("feed /24 over a manual ban", func(t *testing.T) {
		ban("10.77.5.7")
		waitEnforced(t, addr("10.77.5.7"), true, f.a, f.b)
		// The feed now lists the /24; blocklistd fetches it when it starts.
		feedBody.set("198.51.100.0/24\n203.0.113.0/24\n192.0.2.0/25\n100.64.0.0/24\n10.77.5.0/24\n")
		f.stopServers()
		for _, cfg := range f.serverCfgs {
			appendFleetFile(t, cfg, fmt.Sprintf("feeds:\n  - {name: drop, url: '%s', interval: 1h}\n", feedURL))
		}
		f.restartServers()
		waitEnforced(t, addr("10.77.5.200"), true, f.a, f.b)
		settled("feed lists 10.77.5.0/24")
		blocked("after the feed's /24 arrived", addr("10.77.5.7"), true)
		// The feed drops the /24 (one entry of five: not a suspicious
		// shrink); the manual ban stays enforced.
		feedBody.set("198.51.100.0/24\n203.0.113.0/24\n192.0.2.0/25\n100.64.0.0/24\n")
		f.stopServers()
		f.restartServers()
		waitEnforced(t, addr("10.77.5.200"), false, f.a, f.b)
		settled("feed drops 10.77.5.0/24")
		blocked("after the feed dropped its /24", addr("10.77.5.7"), true)
	})
	for _, ag := range agents {
		// The restarts cost a few failed polls; the agents are back.
		f.waitStatus(ag, "reachable again", func(s agent.Status, _ bool) bool { return s.Reachable && s.Failures == 0 })
	}
}

// feedContent is what the test's feed server answers.
type feedContent struct {
	mu   sync.Mutex
	body string
}

func (c *feedContent) set(s string) { c.mu.Lock(); c.body = s; c.mu.Unlock() }

func (c *feedContent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, c.body)
}

// serveFeed serves c over HTTP on loopback inside host h and returns its
// URL.
func serveFeed(t *testing.T, h *testenv.Host, c *feedContent) string {
	t.Helper()
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/drop.txt"
}

func appendFleetFile(t testing.TB, path, content string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(content); err != nil {
		t.Fatal(err)
	}
}
