package blocklist_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/blocklist/store/pgstore"
	"github.com/rampart-sec/rampart/test/testenv"
)

// Two blocklistd replicas share one PostgreSQL: a ban, an allow, reports
// and expiry on one reach the agents of the other through LISTEN/NOTIFY.
func TestServerPostgresReplicas(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	p := newServerPKI(t)
	cfg := server.Config{Policy: server.Policy{Threshold: 5}}
	open := func() *pgstore.Store {
		st, err := pgstore.Open(ctx, pg.DSN, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	urlA := startServerOn(t, p, open(), cfg, "replica-a")
	urlB := startServerOn(t, p, open(), cfg, "replica-b")
	adminA := p.client(t, urlA, "admin")
	agentB := &serverAgent{c: p.client(t, urlB, "agent")}
	agentA := &serverAgent{c: p.client(t, urlA, "agent")}
	agentB.sync(t, time.Second)
	agentA.sync(t, time.Second)

	// A ban on A wakes the agent long-polling B.
	if err := adminA.Ban(ctx, netip.MustParsePrefix("192.0.2.0/24"), 0, "replica test"); err != nil {
		t.Fatal(err)
	}
	agentB.syncUntil(t, "ban made on A, seen through B", func(s map[netip.Prefix]bool) bool { return s[netip.MustParsePrefix("192.0.2.0/24")] })

	// Reports split across replicas count fleet-wide.
	addr := netip.MustParseAddr("203.0.113.50")
	repA, repB := p.client(t, urlA, "reporter"), p.client(t, urlB, "reporter")
	for _, c := range []*client.Client{repA, repB, repA, repB} {
		if err := c.Report(ctx, client.Report{Addr: addr, Reason: "sshd", Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	agentA.sync(t, 0)
	if agentA.set[netip.PrefixFrom(addr, 32)] {
		t.Fatal("banned below the threshold")
	}
	if err := repB.Report(ctx, client.Report{Addr: addr, Reason: "sshd", Count: 1}); err != nil {
		t.Fatal(err)
	}
	agentA.syncUntil(t, "fleet-wide report ban made on B, seen through A", func(s map[netip.Prefix]bool) bool { return s[netip.PrefixFrom(addr, 32)] })

	// An allow entry made through B subtracts on A.
	if err := p.client(t, urlB, "admin").Allow(ctx, netip.MustParsePrefix("192.0.2.0/25"), "office"); err != nil {
		t.Fatal(err)
	}
	agentA.syncUntil(t, "allow made on B, seen through A", func(s map[netip.Prefix]bool) bool {
		return !s[netip.MustParsePrefix("192.0.2.0/24")] && s[netip.MustParsePrefix("192.0.2.128/25")]
	})

	// A short ban expires on every replica.
	if err := adminA.Ban(ctx, netip.MustParsePrefix("198.51.100.7/32"), 2*time.Second, "short"); err != nil {
		t.Fatal(err)
	}
	agentB.syncUntil(t, "short ban", func(s map[netip.Prefix]bool) bool { return s[netip.MustParsePrefix("198.51.100.7/32")] })
	agentB.syncUntil(t, "short ban expired", func(s map[netip.Prefix]bool) bool { return !s[netip.MustParsePrefix("198.51.100.7/32")] })

	// Both replicas publish the same set at the same version, once A has
	// read the expiry (whichever replica made it).
	agentB.sync(t, 0)
	agentA.syncUntil(t, "same version on both replicas", func(map[netip.Prefix]bool) bool { return agentA.version >= agentB.version })
	if agentA.version != agentB.version || strings.Join(agentA.list(), " ") != strings.Join(agentB.list(), " ") {
		t.Fatalf("replica A: %v@%d, replica B: %v@%d", agentA.list(), agentA.version, agentB.list(), agentB.version)
	}

	// A third replica started now loads everything.
	urlC := startServerOn(t, p, open(), cfg, "replica-c")
	agentC := &serverAgent{c: p.client(t, urlC, "agent")}
	agentC.sync(t, time.Second)
	if len(agentC.list()) != len(agentA.list()) {
		t.Fatalf("new replica publishes %v, others %v", agentC.list(), agentA.list())
	}
}
