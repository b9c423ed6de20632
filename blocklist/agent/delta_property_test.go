package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// TestFirewallDeltaIssue12 is the hole of issue 12 at the agent: an entry
// taken away must not unblock a narrower or wider entry that stays.
func TestFirewallDeltaIssue12(t *testing.T) {
	policy := firewall.Policy{HostAddrs: noHostAddrs}
	steps := []struct{ add, remove []netip.Prefix }{
		{add: pfx("10.77.0.94/32")},
		{add: pfx("10.77.0.92/30")}, // a server that does not fold nested entries
		{remove: pfx("10.77.0.92/30")},
		{add: pfx("10.77.0.0/24")},
		{remove: pfx("10.77.0.94/32")},
	}
	var fake firewalltest.Backend
	var entries []netip.Prefix
	for i, st := range steps {
		next := applyDelta(entries, st.add, st.remove)
		pd, _, err := policy.BuildDelta(firewallDelta(next, st.add, st.remove))
		if err != nil {
			t.Fatal(err)
		}
		if err := fake.Apply(context.Background(), pd); err != nil {
			t.Fatal(err)
		}
		entries = next
		want, _, _ := policy.Build(entries)
		got, _ := fake.Current(context.Background())
		if ok, diff := firewalltest.Equal(got, want); !ok {
			t.Fatalf("step %d (+%v -%v): %s", i, st.add, st.remove, diff)
		}
	}
}

func noHostAddrs() ([]netip.Addr, error) { return nil, nil }

// agentStep is one update from blocklistd as the agent sees it: entries
// added and removed, overlapping each other and the set, as a server that
// does not fold nested entries would send them.
type agentStep struct{ add, remove []netip.Prefix }

func (s agentStep) String() string { return fmt.Sprintf("+%v -%v", s.add, s.remove) }

// TestDeltaEqualsReplaceProperty is the agent's half of the invariant, in
// memory: after any sequence of deltas the set the backend enforces equals
// Policy.Build of the entries, what a full replace would install. The
// policy refuses /8s and allowlists prefixes inside the generated ones,
// so refusals and allowlist trimming are exercised too.
func TestDeltaEqualsReplaceProperty(t *testing.T) {
	policy := firewall.Policy{
		MaxBits4:  16,
		Allow:     pfx("10.77.1.88/30", "2001:db8:1::/64"),
		HostAddrs: noHostAddrs,
	}
	seeds, steps := 20, 500
	if testing.Short() {
		seeds = 4
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		g := firewalltest.NewPrefixes(seed)
		var ops []agentStep
		for range steps {
			st := agentStep{add: g.List(3)}
			// Mostly remove what is there, sometimes what is not.
			for range g.Rand().IntN(3) {
				st.remove = append(st.remove, g.Prefix())
			}
			ops = append(ops, st)
		}
		run := func(ops []agentStep) int { return runAgentSteps(policy, ops, nil) }
		if n := run(ops); n > 0 {
			short := firewalltest.Shrink(ops, run)
			var log []string
			runAgentSteps(policy, short, &log)
			t.Fatalf("seed %d fails at step %d; shortest failing sequence (%d steps):\n%s", seed, n, len(short), joinLines(log))
		}
	}
}

// runAgentSteps replays ops from an empty set and returns the number of
// the first step after which the backend differs from a full replace, or
// 0. Removals name current entries half of the time, so deltas take away
// what is there.
func runAgentSteps(policy firewall.Policy, ops []agentStep, log *[]string) int {
	ctx := context.Background()
	var fake firewalltest.Backend
	var entries []netip.Prefix
	for i, st := range ops {
		remove := slices.Clone(st.remove)
		for j := range remove {
			if len(entries) > 0 && j%2 == 0 {
				remove[j] = entries[int(remove[j].Addr().AsSlice()[len(remove[j].Addr().AsSlice())-1])%len(entries)]
			}
		}
		next := applyDelta(entries, st.add, remove)
		pd, _, err := policy.BuildDelta(firewallDelta(next, st.add, remove))
		if err == nil {
			err = fake.Apply(ctx, pd)
		}
		entries = next
		want, _, _ := policy.Build(entries)
		got, _ := fake.Current(ctx)
		ok, diff := firewalltest.Equal(got, want)
		if log != nil {
			*log = append(*log, fmt.Sprintf("step %d: +%v -%v", i+1, st.add, remove))
		}
		if err != nil || !ok {
			if log != nil {
				*log = append(*log, fmt.Sprintf("  entries %v: %v %s", entries, err, diff))
			}
			return i + 1
		}
	}
	return 0
}

func joinLines(ls []string) string {
	out := ""
	for _, l := range ls {
		out += "\t" + l + "\n"
	}
	return out
}
