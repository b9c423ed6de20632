package operator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/test/testenv"
)

func examplesDir() string { return filepath.Join(testenv.ModuleRoot(), "examples") }

// TestAlertRules checks rampart-rules.yml with promtool and runs its unit
// tests (every alert firing when it should, quiet when it should not).
func TestAlertRules(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	dir := filepath.Join(examplesDir(), "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "rampart-rules.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "rampart-rules.test.yml", "rampart-rules-acme.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Targets     []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(examplesDir(), "grafana", "*.json"))
	if len(files) < 4 {
		t.Fatalf("want a dashboard per piece in examples/grafana, found %v", files)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// TestDashboards checks every panel has a title, a description (what the
// README lists) and PromQL that promtool accepts, and that the README
// describes every panel.
func TestDashboards(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	readme, err := os.ReadFile(filepath.Join(examplesDir(), "grafana", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	n := 0
	for file, d := range loadDashboards(t) {
		if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
			t.Errorf("%s: title %q, uid %q, %d panels", file, d.Title, d.UID, len(d.Panels))
		}
		for _, p := range d.Panels {
			if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q lacks a title, description or query", file, p.Title)
			}
			if !strings.Contains(string(readme), "**"+p.Title+"**") {
				t.Errorf("%s: panel %q is not described in examples/grafana/README.md", file, p.Title)
			}
			for _, tg := range p.Targets {
				n++
				q, _ := json.Marshal(tg.Expr)
				fmt.Fprintf(&rules, "      - record: dashboard_query_%d # %s: %s\n        expr: %s\n", n, file, p.Title, q)
			}
		}
	}
	f := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries do not parse: %v\n%s", err, out)
	}
}

var metricNameRE = regexp.MustCompile(`\brampart_[a-z0-9_]+\b`)

// usedMetrics is every rampart_ metric name the alert rules and the
// dashboards query, histogram series reduced to their metric, with where
// each is used.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		for _, m := range metricNameRE.FindAllString(expr, -1) {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(m, "_seconds"+suf) || strings.HasSuffix(m, "_bytes"+suf) {
					m = strings.TrimSuffix(m, suf)
				}
			}
			used[m] = append(used[m], where)
		}
	}
	rules, err := os.ReadFile(filepath.Join(examplesDir(), "prometheus", "rampart-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && !strings.Contains(l, "summary:") && !strings.Contains(l, "description:") {
			add("rampart-rules.yml", l)
		}
	}
	for file, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				add(file+": "+p.Title, tg.Expr)
			}
		}
	}
	return used
}

// declaredMetrics is every rampart_ metric name written as a string in the
// non-test Go source: what the registries can expose, observed or not (a
// counter vector with no observation yet is not in a scrape).
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(rampart_[a-z0-9_]+)"`)
	decl := map[string]bool{}
	root := testenv.ModuleRoot()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "test" || d.Name() == "third_party" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			decl[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return decl
}

// TestMonitoringMetricsDeclared checks every metric the rules and
// dashboards use is declared by some package; TestDemoAsPrinted checks
// them against what the running daemons expose.
func TestMonitoringMetricsDeclared(t *testing.T) {
	decl := declaredMetrics(t)
	var missing []string
	for m, where := range usedMetrics(t) {
		if !decl[m] {
			missing = append(missing, fmt.Sprintf("%s (used in %s)", m, strings.Join(where, "; ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics used by the alert rules or dashboards that no package declares:\n  %s", strings.Join(missing, "\n  "))
	}
}

// scrapeNames returns the metric names in Prometheus text exposition.
func scrapeNames(text string, into map[string]bool) {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			into[f[2]] = true
		} else if m := regexp.MustCompile(`^(rampart_[a-z0-9_]+)`).FindString(line); m != "" {
			into[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")] = true
		}
	}
}

// checkExposed scrapes the running demo's daemons and textfiles, and
// fails for any metric the rules or dashboards use that the daemons
// neither expose nor declare; those declared but not yet observed (no
// lockout happened in the demo, say) are logged.
func checkExposed(t *testing.T, urls, textfiles []string) {
	t.Helper()
	exposed := map[string]bool{}
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("scrape %s: %v", u, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("scrape %s: %s", u, resp.Status)
		}
		scrapeNames(string(body), exposed)
	}
	for _, f := range textfiles {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("textfile: %v", err)
			continue
		}
		scrapeNames(string(body), exposed)
	}
	decl := declaredMetrics(t)
	var missing, unobserved []string
	for m, where := range usedMetrics(t) {
		switch {
		case exposed[m]:
		case decl[m]:
			unobserved = append(unobserved, m)
		default:
			missing = append(missing, fmt.Sprintf("%s (used in %s)", m, strings.Join(where, "; ")))
		}
	}
	sort.Strings(missing)
	sort.Strings(unobserved)
	if len(missing) > 0 {
		t.Errorf("metrics used by the alert rules or dashboards that the running daemons do not expose:\n  %s", strings.Join(missing, "\n  "))
	}
	t.Logf("%d rampart metrics exposed by the demo; used but not observed in it (declared, no event yet): %s", len(exposed), strings.Join(unobserved, ", "))
}
