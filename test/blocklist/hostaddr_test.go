package blocklist_test

// Issue 12: an address the host gains inside a ban must stop being
// blocked, and one it loses must be blocked again, without waiting for a
// full snapshot from blocklistd. The real binaries: blocklistd in one
// namespace, blocklist-agent (nftables) in another, whose addresses the
// test changes with `ip addr`.

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/blocklist/agent"
)

func TestE2EHostAddrsChange(t *testing.T) {
	f := newFleet(t)
	f.startServers("")
	ag := f.newAgent(f.a, "agent-a", agentOpts{})
	// A short re-check interval keeps the test quick; only a generous
	// deadline (waitEnforced's 30 s) is asserted.
	cfg, err := os.ReadFile(ag.cfg)
	if err != nil {
		t.Fatal(err)
	}
	const fw = "firewall: {backend: nftables,"
	if !strings.Contains(string(cfg), fw) {
		t.Fatalf("agent config has no %q:\n%s", fw, cfg)
	}
	writeFleetFile(t, ag.cfg, strings.Replace(string(cfg), fw, fw+" host_addrs_interval: 300ms,", 1))
	f.start(ag)

	ctx := context.Background()
	admin := f.nsClient(f.srv, 0, "admin")
	for _, p := range []string{"10.123.7.0/24", "2001:db8:77::/48"} {
		if err := admin.Ban(ctx, netip.MustParsePrefix(p), 0, "issue 12 host addresses"); err != nil {
			t.Fatalf("ban %s: %v", p, err)
		}
	}
	addr := netip.MustParseAddr
	own4, own6 := addr("10.123.7.5"), addr("2001:db8:77::5")
	waitEnforced(t, own4, true, f.a)
	waitEnforced(t, own6, true, f.a)
	st := f.waitStatus(ag, "both bans", func(s agent.Status, _ bool) bool { return s.Entries == 2 })

	// The host gains an address inside each ban: the kernel set stops
	// covering it, the rest of the ban stays.
	f.a.MustRun("ip", "addr", "add", own4.String()+"/32", "dev", "lo")
	f.a.MustRun("ip", "-6", "addr", "add", own6.String()+"/128", "dev", "lo", "nodad")
	waitEnforced(t, own4, false, f.a)
	waitEnforced(t, own6, false, f.a)
	blocks := enforced(t, f.a, "rampart")
	for _, a := range []netip.Addr{addr("10.123.7.4"), addr("10.123.7.6"), addr("10.123.7.200"), addr("2001:db8:77::4"), addr("2001:db8:77:1::1")} {
		if !blocks(a) {
			t.Errorf("after the host gained %v and %v: %v is no longer blocked", own4, own6, a)
		}
	}
	// blocklistd did not send anything: the agent rebuilt the set alone.
	if now, _ := f.status(ag); now.Version != st.Version {
		t.Errorf("version moved from %d to %d: the test wanted no change from blocklistd", st.Version, now.Version)
	}

	// The host loses them: the bans cover them again.
	f.a.MustRun("ip", "addr", "del", own4.String()+"/32", "dev", "lo")
	f.a.MustRun("ip", "-6", "addr", "del", own6.String()+"/128", "dev", "lo")
	waitEnforced(t, own4, true, f.a)
	waitEnforced(t, own6, true, f.a)
	ag.proc.stop(t)
}
