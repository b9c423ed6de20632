package detect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/pkg/config"
)

func TestTracker(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("192.0.2.7")
	b := netip.MustParseAddr("192.0.2.8")
	tr := newTracker(3, time.Minute, 100)
	steps := []struct {
		addr netip.Addr
		at   time.Duration
		n    int
		fire bool
	}{
		{a, 0, 1, false},
		{a, 10 * time.Second, 2, false},
		{b, 11 * time.Second, 1, false},
		{a, 65 * time.Second, 2, false}, // the first match left the window
		{a, 66 * time.Second, 3, true},
		{a, 67 * time.Second, 1, false}, // counted afresh, quiet for a window
		{a, 68 * time.Second, 2, false},
		{a, 69 * time.Second, 3, false}, // still quiet
		{a, 125 * time.Second, 3, false},
		{a, 127 * time.Second, 3, true}, // quiet over, three within the window
	}
	for i, s := range steps {
		n, fire := tr.hit(s.addr, t0.Add(s.at))
		if n != s.n || fire != s.fire {
			t.Errorf("step %d (%v at %v): hit = %d, %v; want %d, %v", i, s.addr, s.at, n, fire, s.n, s.fire)
		}
	}
}

func TestTrackerBounded(t *testing.T) {
	tr := newTracker(5, time.Minute, 100)
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tr.hit(a, now)
	}
	if len(tr.addrs) > 100 {
		t.Errorf("tracking %d addresses, bound is 100", len(tr.addrs))
	}
}

type fakeReporter struct {
	mu      sync.Mutex
	reports []client.Report
	errs    []error // returned in turn before succeeding
}

func (f *fakeReporter) Report(ctx context.Context, r client.Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	f.reports = append(f.reports, r)
	return nil
}

func (f *fakeReporter) Reports() []client.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reports)
}

func TestRunnerReportsOffenders(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.log")
	audit := filepath.Join(dir, "audit.jsonl")
	var ib netipx.IPSetBuilder
	ib.AddPrefix(netip.MustParsePrefix("10.0.0.0/8"))
	ignore, _ := ib.IPSet()
	cfgs := []Config{
		{Name: "sshd", Type: "sshd", File: auth, Threshold: 3, Window: config.Duration(time.Minute), Poll: config.Duration(5 * time.Millisecond)},
		{Name: "bastion", Type: "json", File: audit, Threshold: 2, Reason: "bastion brute force", Poll: config.Duration(5 * time.Millisecond),
			Match: map[string]string{"type": "auth", "result": "failure"}, AddrField: "source"},
	}
	var ds []*Detector
	for _, c := range cfgs {
		d, err := c.Build(ignore, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	rep := &fakeReporter{errs: []error{errors.New("connection refused")}}
	reg := prometheus.NewRegistry()
	r := &Runner{Reporter: rep, Registry: reg, Retry: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, ds) }()
	time.Sleep(50 * time.Millisecond)

	for i := range 4 {
		appendTo(t, auth, fmt.Sprintf("sshd[1]: Failed password for root from 192.0.2.7 port %d ssh2\n", 1000+i))
		appendTo(t, auth, fmt.Sprintf("sshd[1]: Failed password for root from 10.1.2.3 port %d ssh2\n", 1000+i))
		appendTo(t, auth, "sshd[1]: Accepted publickey for deploy from 192.0.2.99 port 5 ssh2: ED25519 SHA256:x\n")
	}
	appendTo(t, audit, `{"type":"auth","result":"failure","source":"[2001:db8::5]:4022"}`+"\n")
	appendTo(t, audit, `{"type":"auth","result":"success","source":"[2001:db8::5]:4022"}`+"\n")
	appendTo(t, audit, `{"type":"auth","result":"failure","source":"[2001:db8::5]:4023"}`+"\n")

	want := []client.Report{
		{Addr: netip.MustParseAddr("192.0.2.7"), Reason: "sshd: 3 matches in 1m0s", Count: 3, Window: time.Minute},
		{Addr: netip.MustParseAddr("2001:db8::5"), Reason: "bastion brute force", Count: 2, Window: DefaultWindow},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := rep.Reports()
		slices.SortFunc(got, func(a, b client.Report) int { return a.Addr.Compare(b.Addr) })
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reports = %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := matchesOf(t, reg, "sshd"); n != 4 {
		t.Errorf("sshd matches = %v, want 4 (the ignored address is not counted)", n)
	}
}

// matchesOf reads the matches counter of one detector from reg.
func matchesOf(t *testing.T, reg *prometheus.Registry, detector string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rampart_blocklist_detect_matches_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == detector {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no matches metric for %s", detector)
	return 0
}

func TestRejectedReportNotRetried(t *testing.T) {
	rep := &fakeReporter{errs: []error{&client.StatusError{Code: 400, Message: "bad"}}}
	r := &Runner{Reporter: rep, Retry: time.Millisecond}
	got := r.deliver(context.Background(), nopLogger(), client.Report{Addr: netip.MustParseAddr("192.0.2.1")})
	if got != "rejected" || len(rep.Reports()) != 0 {
		t.Errorf("deliver = %q, reports %v", got, rep.Reports())
	}
}

func TestConfigBuild(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		err  string // "" means valid
	}{
		{"sshd file", "type: sshd\nfile: /var/log/auth.log\n", ""},
		{"sshd journal", "type: sshd\njournal: true\nthreshold: 3\nwindow: 1h\n", ""},
		{"nginx preset", "name: web\ntype: nginx\nfile: /var/log/nginx/access.log\n", ""},
		{"haproxy preset", "type: haproxy\nfile: /var/log/haproxy.log\n", ""},
		{"regex", "type: regex\nfile: /x\npattern: '^(?P<addr>\\S+) FAIL'\n", ""},
		{"json", "type: json\nfile: /x\nmatch: {type: auth}\naddr_field: source\n", ""},
		{"command", "type: sshd\ncommand: [tail, -F, /var/log/secure]\n", ""},
		{"unknown type", "type: apache\nfile: /x\n", "unknown type"},
		{"no source", "type: sshd\n", "exactly one of"},
		{"two sources", "type: sshd\nfile: /x\njournal: true\n", "exactly one of"},
		{"journal not sshd", "type: nginx\njournal: true\n", "journal is for type sshd"},
		{"regex without pattern", "type: regex\nfile: /x\n", "needs a pattern"},
		{"regex without addr", "type: regex\nfile: /x\npattern: 'FAIL'\n", "no (?P<addr>"},
		{"json without match", "type: json\nfile: /x\naddr_field: source\n", "needs match"},
		{"match on sshd", "type: sshd\nfile: /x\nmatch: {a: b}\n", "type json only"},
		{"pattern on sshd", "type: sshd\nfile: /x\npattern: x\n", "pattern is for"},
		{"negative threshold", "type: sshd\nfile: /x\nthreshold: -1\n", "threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			if err := config.Decode("detector.yaml", []byte(tt.yaml), &c); err != nil {
				t.Fatal(err)
			}
			_, err := c.Build(nil, nil)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Build: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Build error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// failingSource cannot be read, as a log without permission.
type failingSource struct{}

func (failingSource) Lines(ctx context.Context, fn func([]byte)) error {
	return errors.New("open /var/log/secure: permission denied")
}

func TestRunnerKeepsOtherDetectors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	good, err := Config{Name: "good", Type: "sshd", File: path, Threshold: 1, Poll: config.Duration(5 * time.Millisecond)}.Build(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := &Detector{Name: "bad", Source: failingSource{}, Matcher: NewSSHD(), Count: 1, Window: time.Minute}
	rep := &fakeReporter{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- (&Runner{Reporter: rep}).Run(ctx, []*Detector{bad, good}) }()
	time.Sleep(50 * time.Millisecond)
	appendTo(t, path, "sshd[1]: Invalid user x from 192.0.2.44 port 1\n")
	deadline := time.Now().Add(10 * time.Second)
	for len(rep.Reports()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the good detector stopped with the bad one")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), `detector "bad"`) {
		t.Errorf("Run = %v, want the bad detector's error", err)
	}
}
