package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rampart-sec/rampart/blocklist/feed"
)

// feedServer serves whatever body and content type the test sets.
type feedServer struct {
	*httptest.Server
	mu    sync.Mutex
	body  []byte
	ctype string
}

func newFeedServer(t *testing.T, body string) *feedServer {
	fs := &feedServer{body: []byte(body), ctype: "text/plain"}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		w.Header().Set("Content-Type", fs.ctype)
		w.Write(fs.body)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) set(ctype string, body []byte) {
	fs.mu.Lock()
	fs.body, fs.ctype = body, ctype
	fs.mu.Unlock()
}

func hosts(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "203.0.113.%d\n", i+1)
	}
	return b.String()
}

// A feed that answers 200 with something unusable keeps its entries; the
// failure is counted with its reason and logged with the feed's name; an
// operator accepts a legitimate shrink or emptying explicitly.
func TestFeedsNeverShrinkSilently(t *testing.T) {
	fsrv := newFeedServer(t, hosts(8)+"127.0.0.1\n224.0.0.5\n10.0.0.0/7\nfe80::1\n")
	h := newHarness(t, Config{Feeds: []feed.Feed{{Name: "f", URL: fsrv.URL, Interval: time.Hour}}})
	admin := h.client("admin", RoleAdmin)
	ctx := context.Background()
	agent := &agentView{c: h.client("agent", RoleAgent)}
	waitFor(t, func() bool { agent.sync(t, time.Second); return len(agent.set) > 0 })
	// Loopback, multicast, link-local and too broad entries are rejected lines.
	if got := agent.list(); len(got) != 8 || !strings.HasPrefix(got[0], "203.0.113.") {
		t.Fatalf("agent holds %v, want the 8 hosts", got)
	}
	if n := testutil.ToFloat64(h.srv.m.feedRejected.WithLabelValues("f")); n != 4 {
		t.Fatalf("rejected lines counted: %v, want 4", n)
	}
	random := make([]byte, 2048)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, tc := range []struct {
		name, ctype, body, reason string
	}{
		{"html error page", "text/html", "<html><body>502 Bad Gateway</body></html>", feed.ReasonNotAList},
		{"html sent as text", "text/plain", "\n<!DOCTYPE html><html>maintenance</html>", feed.ReasonNotAList},
		{"random bytes", "application/octet-stream", string(random), feed.ReasonNotAList},
		{"mostly rejected lines", "text/plain", "203.0.113.1\nsorry\nwe are\ndown\n", feed.ReasonNotAList},
		{"empty body", "text/plain", "", feed.ReasonEmpty},
		{"comments only", "text/plain", "# nothing today\n", feed.ReasonEmpty},
		{"drops 6 of 8", "text/plain", hosts(2), feed.ReasonShrink},
		{"replaced wholesale", "text/plain", "198.51.100.1\n198.51.100.2\n198.51.100.3\n198.51.100.4\n198.51.100.5\n198.51.100.6\n198.51.100.7\n198.51.100.8\n", feed.ReasonShrink},
	} {
		fsrv.set(tc.ctype, []byte(tc.body))
		before := testutil.ToFloat64(h.srv.m.feedFailures.WithLabelValues("f", tc.reason))
		out, err := admin.FetchFeed(ctx, "f", false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if out.Status != "refused" || out.Reason != tc.reason || out.Entries != 8 {
			t.Fatalf("%s: outcome %+v, want refused for %s with 8 entries kept", tc.name, out, tc.reason)
		}
		if after := testutil.ToFloat64(h.srv.m.feedFailures.WithLabelValues("f", tc.reason)); after != before+1 {
			t.Fatalf("%s: feed_failures_total{reason=%q} went from %v to %v", tc.name, tc.reason, before, after)
		}
		if !strings.Contains(h.logs.String(), "feed=f reason="+tc.reason) {
			t.Fatalf("%s: no log line naming the feed and the reason:\n%s", tc.name, h.logs)
		}
		agent.sync(t, 0)
		if len(agent.set) != 8 {
			t.Fatalf("%s: agent holds %v", tc.name, agent.list())
		}
	}
	st, err := admin.Feeds(ctx)
	if err != nil || len(st) != 1 || st[0].LastReason != feed.ReasonShrink || st[0].Failures != 8 || st[0].Entries != 8 {
		t.Fatalf("feed status %+v, %v", st, err)
	}
	// Half is within max_shrink; the operator accepts a bigger drop.
	fsrv.set("text/plain", []byte(hosts(4)))
	if out, err := admin.FetchFeed(ctx, "f", false); err != nil || out.Status != "loaded" || out.Removed != 4 {
		t.Fatalf("dropping half: %+v, %v", out, err)
	}
	fsrv.set("text/plain", []byte(hosts(1)))
	if out, _ := admin.FetchFeed(ctx, "f", false); out.Reason != feed.ReasonShrink {
		t.Fatalf("dropping 3 of 4: %+v", out)
	}
	if out, err := admin.FetchFeed(ctx, "f", true); err != nil || out.Status != "loaded" || out.Entries != 1 {
		t.Fatalf("accepted drop: %+v, %v", out, err)
	}
	fsrv.set("text/plain", nil)
	if out, err := admin.FetchFeed(ctx, "f", true); err != nil || out.Status != "loaded" || out.Entries != 0 {
		t.Fatalf("accepted emptying: %+v, %v", out, err)
	}
	// Accepting never takes what is not a list.
	fsrv.set("text/html", []byte("<html></html>"))
	if out, _ := admin.FetchFeed(ctx, "f", true); out.Reason != feed.ReasonNotAList {
		t.Fatalf("accept of an HTML page: %+v", out)
	}
	if _, err := admin.FetchFeed(ctx, "nope", false); err == nil || !strings.Contains(err.Error(), "no such feed") {
		t.Fatalf("unknown feed: %v", err)
	}
	agent.sync(t, 0)
	if len(agent.set) != 0 {
		t.Fatalf("agent holds %v after the accepted emptying", agent.list())
	}
	if st, _ := admin.Feeds(ctx); st[0].Failures != 1 || st[0].LastReason != feed.ReasonNotAList || st[0].LastSuccess.IsZero() {
		t.Fatalf("feed status %+v", st)
	}
}

// Feeds added, changed or removed in a running server: no restart.
func TestReconfigureFeeds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local.txt")
	if err := os.WriteFile(path, []byte("192.0.2.1\n192.0.2.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsrv := newFeedServer(t, "198.51.100.1\n")
	h := newHarness(t, Config{Feeds: []feed.Feed{{Name: "remote", URL: fsrv.URL, Interval: time.Hour}}})
	agent := &agentView{c: h.client("agent", RoleAgent)}
	waitFor(t, func() bool { agent.sync(t, time.Second); return len(agent.set) == 1 })
	ctx := context.Background()
	local := feed.Feed{Name: "local", URL: "file://" + path, Interval: time.Hour}
	if err := h.srv.Reconfigure(ctx, []netip.Prefix{pfx("192.0.2.2/32")}, []feed.Feed{{Name: "remote", URL: fsrv.URL, Interval: time.Hour}, local}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		agent.sync(t, time.Second)
		return slices.Equal(agent.list(), []string{"192.0.2.1/32", "198.51.100.1/32"})
	})
	// The file changes: a fetch on request sees it.
	if err := os.WriteFile(path, []byte("192.0.2.1\n192.0.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if out, err := h.client("admin", RoleAdmin).FetchFeed(ctx, "local", false); err != nil || out.Status != "loaded" || out.Added != 1 {
		t.Fatalf("fetch of the changed file: %+v, %v", out, err)
	}
	// Removing a feed takes its decisions away at once.
	if err := h.srv.Reconfigure(ctx, nil, []feed.Feed{local}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		agent.sync(t, time.Second)
		return slices.Equal(agent.list(), []string{"192.0.2.1/32", "192.0.2.3/32"})
	})
	if err := h.srv.Reconfigure(ctx, nil, []feed.Feed{local, local}); err == nil {
		t.Fatal("two feeds of one name accepted")
	}
}
