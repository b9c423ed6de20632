//go:build linux

package nftables

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
	"github.com/rampart-sec/rampart/test/testenv"
)

// These tests run against the kernel in a fresh network namespace and
// check what the backend installed with nft, the second opinion.

func newKernelBackend(t *testing.T, h *testenv.Host, opts Options) *Backend {
	t.Helper()
	opts.NetNS = h.Path()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newHost(t *testing.T) *testenv.Host {
	t.Helper()
	testenv.Binary(t, "nft")
	return testenv.NewHost(t)
}

// nftView is what `nft -j list table` reports about Rampart's table.
type nftView struct {
	sets  map[string]*netipx.IPSet
	flags map[string][]string
	rules map[string][]string // chain -> rule summaries
	hooks map[string]string   // chain -> hook
}

func listTable(t *testing.T, h *testenv.Host, table string) (nftView, bool) {
	t.Helper()
	out, err := h.Run("nft", "-j", "list", "table", "inet", table)
	if err != nil {
		if strings.Contains(out, "No such file or directory") {
			return nftView{}, false
		}
		t.Fatal(err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	v := nftView{sets: map[string]*netipx.IPSet{}, flags: map[string][]string{}, rules: map[string][]string{}, hooks: map[string]string{}}
	for _, obj := range doc.Nftables {
		switch {
		case obj["set"] != nil:
			var s struct {
				Name  string            `json:"name"`
				Type  string            `json:"type"`
				Flags []string          `json:"flags"`
				Elem  []json.RawMessage `json:"elem"`
			}
			json.Unmarshal(obj["set"], &s)
			var sb netipx.IPSetBuilder
			for _, e := range s.Elem {
				sb.AddRange(nftElem(t, e))
			}
			v.sets[s.Name], _ = sb.IPSet()
			v.flags[s.Name] = append([]string{s.Type}, s.Flags...)
		case obj["chain"] != nil:
			var c struct {
				Name string `json:"name"`
				Hook string `json:"hook"`
			}
			json.Unmarshal(obj["chain"], &c)
			v.hooks[c.Name] = c.Hook
		case obj["rule"] != nil:
			var r struct {
				Chain   string            `json:"chain"`
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			}
			json.Unmarshal(obj["rule"], &r)
			var parts []string
			for _, e := range r.Expr {
				var m map[string]json.RawMessage
				json.Unmarshal(e, &m)
				for k, val := range m {
					switch k {
					case "match":
						var mt struct {
							Left struct {
								Payload struct{ Protocol, Field string } `json:"payload"`
							} `json:"left"`
							Right string `json:"right"`
						}
						json.Unmarshal(val, &mt)
						parts = append(parts, fmt.Sprintf("%s %s %s", mt.Left.Payload.Protocol, mt.Left.Payload.Field, mt.Right))
					case "reject":
						var rj struct{ Type, Expr string }
						json.Unmarshal(val, &rj)
						parts = append(parts, "reject "+rj.Type+" "+rj.Expr)
					default:
						parts = append(parts, k)
					}
				}
			}
			v.rules[r.Chain] = append(v.rules[r.Chain], strings.Join(parts, " ")+" # "+r.Comment)
		}
	}
	return v, true
}

// nftElem reads one set element of nft's JSON: "addr", {"prefix":...}
// or {"range":[from,to]}.
func nftElem(t *testing.T, e json.RawMessage) netipx.IPRange {
	t.Helper()
	var s string
	if json.Unmarshal(e, &s) == nil {
		a := netip.MustParseAddr(s)
		return netipx.IPRangeFrom(a, a)
	}
	var o struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(e, &o); err != nil {
		t.Fatalf("set element %s: %v", e, err)
	}
	switch {
	case o.Prefix != nil:
		return netipx.RangeOfPrefix(netip.PrefixFrom(netip.MustParseAddr(o.Prefix.Addr), o.Prefix.Len))
	case len(o.Range) == 2:
		return netipx.IPRangeFrom(netip.MustParseAddr(o.Range[0]), netip.MustParseAddr(o.Range[1]))
	}
	t.Fatalf("unknown set element %s", e)
	return netipx.IPRange{}
}

func (v nftView) union() *netipx.IPSet {
	var sb netipx.IPSetBuilder
	for _, s := range v.sets {
		sb.AddSet(s)
	}
	set, _ := sb.IPSet()
	return set
}

// check compares the kernel (through nft and through Current) with want.
func check(t *testing.T, h *testenv.Host, b *Backend, want *netipx.IPSet) nftView {
	t.Helper()
	v, ok := listTable(t, h, b.opts.Table)
	if !ok {
		t.Fatal("table missing")
	}
	if got := v.union(); !got.Equal(want) {
		t.Errorf("nft lists %v, want %v", got.Prefixes(), want.Prefixes())
	}
	for name, s := range v.sets {
		for _, r := range s.Ranges() {
			single := r.From() == r.To()
			if strings.HasPrefix(name, "addr") != single {
				t.Errorf("set %s holds %v", name, r)
			}
		}
	}
	cur, err := b.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Equal(want) {
		t.Errorf("Current = %v, want %v", cur.Prefixes(), want.Prefixes())
	}
	return v
}

func TestKernelLayout(t *testing.T) {
	for _, tt := range []struct {
		name  string
		opts  Options
		rules []string
		hooks map[string]string
	}{
		{"default", Options{}, []string{
			"ip saddr @addr4 counter drop # rampart v1 drop",
			"ip saddr @net4 counter drop # rampart v1 drop",
			"ip6 saddr @addr6 counter drop # rampart v1 drop",
			"ip6 saddr @net6 counter drop # rampart v1 drop",
		}, map[string]string{"input": "input"}},
		{"reject forward", Options{Table: "edge", Reject: true, Forward: true}, []string{
			"ip saddr @addr4 counter reject icmpx admin-prohibited # rampart v1 reject",
			"ip saddr @net4 counter reject icmpx admin-prohibited # rampart v1 reject",
			"ip6 saddr @addr6 counter reject icmpx admin-prohibited # rampart v1 reject",
			"ip6 saddr @net6 counter reject icmpx admin-prohibited # rampart v1 reject",
		}, map[string]string{"input": "input", "forward": "forward"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			b := newKernelBackend(t, h, tt.opts)
			want := ipset(t, "192.0.2.1/32")
			if err := b.Replace(context.Background(), want); err != nil {
				t.Fatal(err)
			}
			v := check(t, h, b, want)
			for chain, hook := range tt.hooks {
				if v.hooks[chain] != hook {
					t.Errorf("chain %s hook %q, want %q", chain, v.hooks[chain], hook)
				}
				if got := strings.Join(v.rules[chain], "\n"); got != strings.Join(tt.rules, "\n") {
					t.Errorf("chain %s rules:\n%s\nwant:\n%s", chain, got, strings.Join(tt.rules, "\n"))
				}
			}
			if len(v.hooks) != len(tt.hooks) {
				t.Errorf("chains %v, want %v", v.hooks, tt.hooks)
			}
			for name, want := range map[string]string{"addr4": "ipv4_addr", "net4": "ipv4_addr interval", "addr6": "ipv6_addr", "net6": "ipv6_addr interval"} {
				if got := strings.Join(v.flags[name], " "); got != want {
					t.Errorf("set %s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestKernelLifecycle runs the same changes through the backend and the
// in-memory fake and compares the kernel with the fake after each step.
func TestKernelLifecycle(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	// Someone else's table must survive everything, Remove included.
	h.MustRun("nft", "add table inet other; add chain inet other c { type filter hook input priority 0; policy accept; }; add set inet other s { type ipv4_addr; elements = { 192.0.2.1 }; }")
	other := h.MustRun("nft", "list", "table", "inet", "other")

	b := newKernelBackend(t, h, Options{})
	var fake firewalltest.Backend
	step := func(name string, fn func(firewall.Backend) error) {
		t.Helper()
		if err := fn(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fn(&fake)
		cur, _ := fake.Current(ctx)
		check(t, h, b, cur)
	}
	full := ipset(t, "192.0.2.1/32", "192.0.2.3/32", "198.51.100.0/24", "203.0.113.0/25", "255.255.255.0/24", "2001:db8::1/128", "2001:db8:1::/48", "0.0.0.0/24")
	step("replace", func(fb firewall.Backend) error { return fb.Replace(ctx, full) })
	handles := ruleHandles(t, h)
	step("replace again", func(fb firewall.Backend) error { return fb.Replace(ctx, full) })
	step("replace other", func(fb firewall.Backend) error {
		return fb.Replace(ctx, ipset(t, "192.0.2.3/32", "198.51.100.0/25", "2001:db8:2::/48", "10.9.0.0/16"))
	})
	step("delta", func(fb firewall.Backend) error {
		return fb.Apply(ctx, deltaOf(
			[]string{"192.0.2.9/32", "198.51.100.128/25", "10.8.0.0/16", "2001:db8:2:1::5/128"},
			[]string{"192.0.2.3/32", "10.9.0.7/32", "2001:db8:2:8000::/49", "203.0.113.5/32"},
		))
	})
	step("delta absent and present", func(fb firewall.Backend) error {
		return fb.Apply(ctx, deltaOf([]string{"192.0.2.9/32", "10.8.0.0/24"}, []string{"192.0.2.77/32", "172.16.0.0/12"}))
	})
	// A restarted agent (a new Backend) loads the intervals from the kernel.
	b = newKernelBackend(t, h, Options{})
	step("delta after restart", func(fb firewall.Backend) error {
		return fb.Apply(ctx, deltaOf([]string{"10.9.0.0/16"}, []string{"10.8.0.0/17", "2001:db8:2:1::5/128"}))
	})
	step("remove wide covering singles", func(fb firewall.Backend) error {
		return fb.Apply(ctx, deltaOf(nil, []string{"192.0.0.0/16"}))
	})
	if got := ruleHandles(t, h); got != handles {
		t.Errorf("rules were recreated (handles %s, then %s): refills must keep rules and counters", handles, got)
	}
	step("replace empty", func(fb firewall.Backend) error { return fb.Replace(ctx, &netipx.IPSet{}) })
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := listTable(t, h, "rampart"); ok {
		t.Error("table still there after Remove")
	}
	if err := b.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if cur, err := b.Current(ctx); err != nil || len(cur.Ranges()) != 0 {
		t.Errorf("Current after Remove = %v, %v", cur, err)
	}
	if got := h.MustRun("nft", "list", "table", "inet", "other"); got != other {
		t.Errorf("table inet other changed:\n%s\nwas:\n%s", got, other)
	}
}

func ruleHandles(t *testing.T, h *testenv.Host) string {
	t.Helper()
	out := h.MustRun("nft", "-a", "list", "chain", "inet", "rampart", "input")
	var hs []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "# handle "); i >= 0 && strings.Contains(l, "saddr") {
			hs = append(hs, l[i+9:])
		}
	}
	return strings.Join(hs, ",")
}

// A table left by another version (or changed options) is rebuilt.
func TestKernelRebuildsForeignLayout(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	h.MustRun("nft", "add table inet rampart; add set inet rampart addr4 { type ipv4_addr; flags interval; }; add chain inet rampart input { type filter hook input priority 0; }; add rule inet rampart input ip saddr @addr4 accept")
	b := newKernelBackend(t, h, Options{})
	want := ipset(t, "192.0.2.1/32", "198.51.100.0/24")
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	v := check(t, h, b, want)
	if len(v.rules["input"]) != 4 || strings.Contains(strings.Join(v.rules["input"], ""), "accept") {
		t.Errorf("rules not rebuilt: %v", v.rules["input"])
	}
	// Switching to reject rebuilds too.
	b = newKernelBackend(t, h, Options{Reject: true})
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	v = check(t, h, b, want)
	if !strings.Contains(v.rules["input"][0], "reject") {
		t.Errorf("rules not switched to reject: %v", v.rules["input"])
	}
}

// A load that outgrows the fixed-size hash set rebuilds it bigger.
func TestKernelGrowsHashSet(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	b := newKernelBackend(t, h, Options{})
	if err := b.Replace(ctx, ipset(t, "192.0.2.1/32")); err != nil {
		t.Fatal(err)
	}
	var sb netipx.IPSetBuilder
	a := netip.MustParseAddr("10.0.0.1")
	for i := 0; i < 70000; i++ {
		sb.Add(a)
		a = a.Next().Next()
	}
	big, _ := sb.IPSet()
	if err := b.Replace(ctx, big); err != nil {
		t.Fatal(err)
	}
	check(t, h, b, big)
	out := h.MustRun("nft", "list", "set", "inet", "rampart", "addr4")
	if !strings.Contains(out, "size 262144") {
		t.Errorf("addr4 not resized:\n%.300s", out)
	}
}
