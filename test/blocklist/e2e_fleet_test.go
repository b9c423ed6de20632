package blocklist_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/test/testenv"
)

// An allowlisted prefix in blocklistd's configuration.
const fleetAllowed = "198.51.100.0/24"

// Host a reports, host b drops, on one blocklistd with its bbolt store.
func TestE2EFleetBolt(t *testing.T) {
	f := newFleet(t)
	f.startServers("", fleetAllowed)
	runFleet(t, f)
}

// The same fleet on two blocklistd replicas sharing PostgreSQL: agent a
// follows and reports to replica 0, agent b follows replica 1.
func TestE2EFleetPostgres(t *testing.T) {
	f := newFleet(t)
	pg := testenv.StartPostgres(t)
	// The replicas run in host srv, which cannot reach the root
	// namespace's loopback; PostgreSQL's unix socket is a file, and files
	// are shared by every network namespace.
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", pg.Dir, u.Port())
	f.startServers(dsn, fleetAllowed)
	runFleet(t, f)
}

func runFleet(t *testing.T, f *fleet) {
	ctx := context.Background()
	last := len(f.serverCfgs) - 1 // b follows the last replica
	agentA := f.newAgent(f.a, "agent-a", agentOpts{replica: 0})
	agentB := f.newAgent(f.b, "agent-b", agentOpts{replica: last, allow: []string{"192.0.2.200"}})
	f.start(agentA)
	f.start(agentB)
	for _, ag := range []*fleetAgent{agentA, agentB} {
		f.waitStatus(ag, "first sync", func(s agent.Status, running bool) bool { return running && s.Reachable && !s.LastSync.IsZero() })
	}
	attacker := f.linkX.A4
	if !f.pingsWithin(10 * time.Second) {
		t.Fatal("x cannot ping b before any ban")
	}
	if out, err := exec.Command(f.bin, "status", "--config", agentB.cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "agent:        running") {
		t.Errorf("blocklist-agent status: %v\n%s", err, out)
	}
	admin := f.nsClient(f.srv, 0, "admin")

	t.Run("report from a becomes a drop on b", func(t *testing.T) {
		failSSH(t, agentA, attacker, 3)
		waitEnforced(t, attacker, true, f.b, f.a)
		if f.pings() {
			t.Fatal("x still reaches b after the ban reached b's firewall")
		}
		l, err := admin.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range l.Decisions {
			found = found || d.Prefix == netip.PrefixFrom(attacker, 32)
		}
		if !found {
			t.Fatalf("blocklistd has no decision for %v: %+v", attacker, l.Decisions)
		}
	})

	t.Run("expired decisions leave every host", func(t *testing.T) {
		short := netip.MustParseAddr("203.0.113.77")
		if err := admin.Ban(ctx, netip.PrefixFrom(short, 32), 2*time.Second, "e2e expiry"); err != nil {
			t.Fatal(err)
		}
		waitEnforced(t, short, true, f.a, f.b)
		waitEnforced(t, short, false, f.a, f.b)
	})

	t.Run("allowlisted address reported 1000 times is never blocked", func(t *testing.T) {
		allowed := netip.MustParseAddr("198.51.100.9")
		rep := f.nsClient(f.srv, 0, "reporter")
		for i := range 1000 {
			if err := rep.Report(ctx, client.Report{Addr: allowed, Reason: "e2e flood", Count: 1}); err != nil {
				t.Fatalf("report %d: %v", i, err)
			}
		}
		// The agents' own detectors report it too.
		failSSH(t, agentA, allowed, 30)
		// A ban made afterwards proves both agents caught up.
		marker := netip.MustParseAddr("192.0.2.99")
		if err := admin.Ban(ctx, netip.PrefixFrom(marker, 32), time.Hour, "e2e marker"); err != nil {
			t.Fatal(err)
		}
		waitEnforced(t, marker, true, f.a, f.b)
		for _, h := range []*testenv.Host{f.a, f.b} {
			if enforced(t, h, "rampart")(allowed) {
				t.Errorf("host %s blocks allowlisted %v", h.Name, allowed)
			}
		}
		// b's own allowlist wins over a ban that a enforces.
		local := netip.MustParseAddr("192.0.2.200")
		if err := admin.Ban(ctx, netip.PrefixFrom(local, 32), time.Hour, "e2e local allow"); err != nil {
			t.Fatal(err)
		}
		waitEnforced(t, local, true, f.a)
		stA, _ := f.status(agentA)
		f.waitStatus(agentB, "the local-allow ban", func(s agent.Status, _ bool) bool { return s.Version >= stA.Version && s.Allowlisted > 0 })
		if enforced(t, f.b, "rampart")(local) {
			t.Errorf("host b blocks %v, which its agent allowlists", local)
		}
	})

	t.Run("agent without a valid client certificate is refused", func(t *testing.T) {
		evil := filepath.Join(t.TempDir(), "evil")
		if err := server.WriteDevCerts(evil, []string{"127.0.0.1"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		// The server certificate is from the real CA, so the rogue agent
		// needs the real CA to trust it; only its own certificate is
		// foreign.
		copyFile(t, f.file("ca.pem"), filepath.Join(evil, "ca.pem"))
		rogues := []*fleetAgent{
			f.newAgent(f.a, "rogue-foreign-ca", agentOpts{table: "rogue1", pki: evil}),
			f.newAgent(f.a, "rogue-reporter-only", agentOpts{table: "rogue2", certName: "reporter"}),
		}
		for _, ag := range rogues {
			f.start(ag)
		}
		for _, ag := range rogues {
			st := f.waitStatus(ag, "refusal", func(s agent.Status, _ bool) bool { return s.Failures >= 2 })
			if st.Version != 0 || !st.LastSync.IsZero() {
				t.Errorf("%s got an answer: %+v", ag.name, st)
			}
			if _, err := os.Stat(filepath.Join(ag.state, agent.SnapshotFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s saved a snapshot: %v", ag.name, err)
			}
			if enforced(t, f.a, ag.name)(attacker) {
				t.Errorf("%s enforces something", ag.name)
			}
			t.Logf("%s: %s", ag.name, st.LastError)
			ag.proc.stop(t)
		}
		if st, _ := f.status(rogues[1]); !strings.Contains(st.LastError, "403") {
			t.Errorf("reporter-only certificate: last error %q, want HTTP 403", st.LastError)
		}
	})

	t.Run("agent restarted while blocklistd is down keeps enforcing", func(t *testing.T) {
		before, _ := f.status(agentB)
		f.stopServers()
		f.waitStatus(agentB, "losing blocklistd", func(s agent.Status, _ bool) bool { return !s.Reachable && s.Failures > 0 })
		waitEnforced(t, attacker, true, f.b)
		agentB.proc.stop(t)
		if st, running := f.status(agentB); running || st.Version != before.Version {
			t.Fatalf("after stop: running %v, status %+v", running, st)
		}
		out, err := exec.Command(f.bin, "status", "--config", agentB.cfg).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "NOT RUNNING") {
			t.Errorf("blocklist-agent status of a stopped agent: %v (want exit status 3)\n%s", err, out)
		}
		// Stopping the agent leaves the firewall as it was.
		if !enforced(t, f.b, "rampart")(attacker) || f.pings() {
			t.Fatal("stopping the agent lifted the ban")
		}
		f.start(agentB)
		st := f.waitStatus(agentB, "restart without blocklistd", func(s agent.Status, running bool) bool {
			return running && s.Restored && s.Failures > 0
		})
		if st.Version != before.Version || st.Entries != before.Entries {
			t.Errorf("restored version %d with %d entries, want %d with %d", st.Version, st.Entries, before.Version, before.Entries)
		}
		if !enforced(t, f.b, "rampart")(attacker) || f.pings() {
			t.Fatal("the restarted agent does not enforce the saved snapshot")
		}
		f.restartServers()
		f.waitStatus(agentB, "blocklistd back", func(s agent.Status, _ bool) bool { return s.Reachable && !s.Restored })
		waitEnforced(t, attacker, true, f.a, f.b)
	})
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFleetFile(t, to, string(data))
}
