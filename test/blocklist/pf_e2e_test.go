package blocklist_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/blocklist/agent"
)

// The real blocklistd and `blocklist-agent run` configured for pf, with
// the fake pfctl in place of OpenBSD's: bans reach the pf table as one
// replace then as deltas (-T add / -T delete of exactly what changed),
// unbans and expiry leave it, a pfctl that refuses changes is reported
// and retried without the table ever being flushed, and an agent started
// on an empty table (a reboot) while blocklistd is down restores its
// saved snapshot and changes nothing more until blocklistd answers, even
// when pfctl fails at first.
func TestE2EPF(t *testing.T) {
	r := newPFRig(t)
	r.startServer()
	r.admin("ban", "192.0.2.10", "--reason", "pf e2e")
	r.admin("ban", "2001:db8:bad::/48")

	// First sync: one full replace, as `pfctl -T replace -f` loads it.
	r.startAgent()
	r.waitTable("first sync", "192.0.2.10", "2001:db8:bad::/48")
	r.wantChanges("first sync", 0, "replace 192.0.2.10 2001:db8:bad::/48", "kill 192.0.2.10", "kill 2001:db8:bad::/48")
	st := r.waitStatus("first sync in status", func(s agent.Status, running bool) bool {
		return running && s.Reachable && s.Entries == 2
	})
	if st.Backend != "pf" || st.Table != pfTable {
		t.Errorf("status --json: backend %q table %q, want pf %s", st.Backend, st.Table, pfTable)
	}
	out, err := exec.Command(r.agent, "status", "--config", r.agentCfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "firewall:     pf, table "+pfTable) {
		t.Errorf("status: %v\n%s", err, out)
	}

	// A third ban while the first two stay: a delta adding only it, and
	// only its states killed.
	mark := len(r.ops())
	r.admin("ban", "198.51.100.0/24")
	r.waitTable("second ban", "192.0.2.10", "198.51.100.0/24", "2001:db8:bad::/48")
	r.wantChanges("second ban", mark, "add 198.51.100.0/24", "kill 198.51.100.0/24")

	// Unbans: deltas deleting only them.
	mark = len(r.ops())
	r.admin("unban", "192.0.2.10")
	r.waitTable("unban", "198.51.100.0/24", "2001:db8:bad::/48")
	r.admin("unban", "2001:db8:bad::/48")
	r.waitTable("unban IPv6", "198.51.100.0/24")
	r.wantChanges("unbans", mark, "delete 192.0.2.10", "delete 2001:db8:bad::/48")

	// Expiry in blocklistd reaches the table as a delete.
	mark = len(r.ops())
	// (Waiting for the commands rather than for the table in between,
	// which a loaded machine could miss.)
	r.admin("ban", "203.0.113.7", "--ttl", "3s")
	r.wantChanges("ban then expiry", mark, "add 203.0.113.7", "kill 203.0.113.7", "delete 203.0.113.7")
	r.waitTable("expiry", "198.51.100.0/24")

	// pfctl refusing every change: the agent says so, retries, and the
	// table keeps what it enforced.
	mark = len(r.ops())
	r.setFail(true)
	r.admin("ban", "192.0.2.20")
	st = r.waitStatus("pfctl failures reported", func(s agent.Status, running bool) bool {
		return running && s.Failures >= 3
	})
	if !st.Reachable || !strings.Contains(st.LastError, "firewall") || !strings.Contains(st.LastError, "Operation not permitted") {
		t.Errorf("status after pfctl failures: reachable %v, last error %q; want reachable and pfctl's message", st.Reachable, st.LastError)
	}
	failed := 0
	for _, o := range r.ops()[mark:] {
		if strings.HasPrefix(o.verb, "FAILED") {
			failed++
		}
	}
	if failed < 3 {
		t.Errorf("pfctl refused %d changes; the agent should have retried\n%s", failed, r.rawLog())
	}
	if got := r.table(); strings.Join(got, " ") != "198.51.100.0/24" {
		t.Fatalf("pf table %v while pfctl fails, want it untouched", got)
	}
	r.wantChanges("while pfctl fails", mark)
	r.setFail(false)
	r.waitTable("pfctl back", "192.0.2.20", "198.51.100.0/24")
	r.waitStatus("recovery in status", func(s agent.Status, running bool) bool {
		return running && s.Reachable && s.Failures == 0 && s.Entries == 2
	})
	// Whatever the recovery ran, it removed nothing and cut only the
	// new source's states.
	for _, o := range r.changesSince(mark) {
		if o.verb == "flush" || o.verb == "delete" || o.verb == "kill" && o.entries[0] != "192.0.2.20" {
			t.Errorf("recovery ran pfctl %s", o)
		}
	}

	// Reboot while blocklistd is down: pf comes up with the table empty,
	// and the agent enforces its saved snapshot without blocklistd.
	r.stopAgent()
	if st, running := r.status(); running || st.Backend != "pf" {
		t.Errorf("stopped agent: running %v, backend %q", running, st.Backend)
	}
	r.stopServer()
	writeFleetFile(t, filepath.Join(r.pfDir, "tables", pfTable), "")
	mark = len(r.ops())
	r.startAgent()
	r.waitTable("restore", "192.0.2.20", "198.51.100.0/24")
	restored := []string{"replace 192.0.2.20 198.51.100.0/24", "kill 192.0.2.20", "kill 198.51.100.0/24"}
	r.wantChanges("restore", mark, restored...)
	st = r.waitStatus("blocklistd unreachable", func(s agent.Status, running bool) bool {
		return running && !s.Reachable && s.Failures >= 3
	})
	if !st.Restored || st.Entries != 2 {
		t.Errorf("status after restore: %+v, want restored with 2 entries", st)
	}
	// Three failed syncs later nothing else touched the table.
	r.wantChanges("blocklistd down", mark, restored...)
	if got := r.table(); strings.Join(got, " ") != "192.0.2.20 198.51.100.0/24" {
		t.Fatalf("pf table %v while blocklistd is down", got)
	}

	// blocklistd back: the agent resumes from the version it restored.
	r.startServer()
	mark = len(r.ops())
	r.admin("ban", "192.0.2.30")
	r.waitTable("after blocklistd returns", "192.0.2.20", "192.0.2.30", "198.51.100.0/24")
	r.wantChanges("after blocklistd returns", mark, "add 192.0.2.30", "kill 192.0.2.30")
	r.waitStatus("resumed", func(s agent.Status, running bool) bool {
		return running && s.Reachable && !s.Restored && s.Entries == 3
	})

	// Reboot again, blocklistd down and pfctl failing at the agent's
	// start: the agent stays up, says why, and loads the snapshot once
	// pfctl works (on OpenBSD nothing would restart an agent that quit).
	r.stopAgent()
	r.stopServer()
	writeFleetFile(t, filepath.Join(r.pfDir, "tables", pfTable), "")
	r.setFail(true)
	mark = len(r.ops())
	r.startAgent()
	st = r.waitStatus("refused snapshot reported", func(s agent.Status, running bool) bool {
		return running && s.Failures >= 3
	})
	if !strings.Contains(st.LastError, "saved snapshot") || !strings.Contains(st.LastError, "Operation not permitted") {
		t.Errorf("status with pfctl failing at start: last error %q", st.LastError)
	}
	r.wantChanges("pfctl failing at start", mark)
	r.setFail(false)
	r.waitTable("snapshot once pfctl works", "192.0.2.20", "192.0.2.30", "198.51.100.0/24")
	r.waitStatus("restored after retries", func(s agent.Status, running bool) bool {
		return running && s.Restored && s.Entries == 3
	})
	for _, o := range r.ops() {
		if strings.HasSuffix(o.verb, "flush") {
			t.Errorf("the agent ran pfctl %s; only `blocklist-agent flush` may", o.verb)
		}
	}
}
