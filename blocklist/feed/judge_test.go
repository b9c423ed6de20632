package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/pkg/listfile"
)

// looksBinaryOrMarkup is the reference for what Parse refuses outright.
func looksBinaryOrMarkup(data []byte) bool {
	if bytes.IndexByte(data, 0) >= 0 {
		return true
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(t) > 0 && t[0] == '<'
}

func reason(err error) string {
	var rf *Refusal
	if errors.As(err, &rf) {
		return rf.Reason
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

// Bodies answered with 200 that are not a list are refused, whatever else
// they hold.
func TestFetchRefusesWhatIsNotAList(t *testing.T) {
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	cases := []struct {
		name, ctype string
		body        []byte
	}{
		{"html page", "text/plain", []byte("<!DOCTYPE html>\n<html><body>Service temporarily unavailable</body></html>\n")},
		{"html content type", "text/html; charset=utf-8", []byte("10.0.0.1\n")},
		{"xml error", "", []byte("\n  <?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>")},
		{"random bytes", "application/octet-stream", random},
		{"gzip without encoding", "", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.Write(tc.body)
			}))
			defer srv.Close()
			f := &Fetcher{Feed: Feed{Name: "x", URL: srv.URL}, Client: srv.Client()}
			_, err := f.Fetch(context.Background())
			if reason(err) != ReasonNotAList || !strings.Contains(err.Error(), "feed x") {
				t.Fatalf("err = %v, want a not_a_list refusal naming the feed", err)
			}
		})
	}
}

// A file:// feed reads a local file, and answers "not modified" until the
// file changes (once the previous result was committed).
func TestFileFeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte("192.0.2.1\n198.51.100.0/24 ; comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{Feed: Feed{Name: "local", URL: "file://" + path}}
	res, err := f.Fetch(context.Background())
	if err != nil || len(res.Prefixes) != 2 {
		t.Fatalf("first read: %+v, %v", res, err)
	}
	// Not committed (say the caller refused it): read again in full.
	if res, err = f.Fetch(context.Background()); err != nil || res.NotModified {
		t.Fatalf("uncommitted result answered not modified: %+v, %v", res, err)
	}
	f.Commit(res)
	if res, err = f.Fetch(context.Background()); err != nil || !res.NotModified {
		t.Fatalf("unchanged file: %+v, %v; want not modified", res, err)
	}
	if err := os.WriteFile(path, []byte("192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if res, err = f.Fetch(context.Background()); err != nil || res.NotModified || len(res.Prefixes) != 1 {
		t.Fatalf("changed file: %+v, %v", res, err)
	}
	for _, bad := range []string{"file://host/x", "file://" + filepath.Dir(path), "file://" + path + ".missing"} {
		f := &Fetcher{Feed: Feed{Name: "bad", URL: bad}}
		if _, err := f.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "feed bad") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestJudge(t *testing.T) {
	four := prefixes("192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "192.0.2.4/32")
	for _, tc := range []struct {
		name       string
		prev, next []netip.Prefix
		rejected   int
		limits     Limits
		force      bool
		want       string
	}{
		{"first load", nil, four, 0, Limits{}, false, ""},
		{"empty first load", nil, nil, 0, Limits{}, false, ""},
		{"unchanged", four, four, 0, Limits{}, false, ""},
		{"half removed", four, four[:2], 0, Limits{}, false, ""},
		{"three of four removed", four, four[:1], 0, Limits{}, false, ReasonShrink},
		{"all replaced", four, prefixes("10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32"), 0, Limits{}, false, ReasonShrink},
		{"emptied", four, nil, 0, Limits{}, false, ReasonEmpty},
		{"emptied, allowed", four, nil, 0, Limits{AllowEmpty: true}, false, ""},
		{"emptied, forced", four, nil, 0, Limits{}, true, ""},
		{"shrunk, forced", four, four[:1], 0, Limits{}, true, ""},
		{"max_shrink 75%", four, four[:1], 0, Limits{MaxShrink: 0.75}, false, ""},
		{"max_shrink 100% still refuses empty", four, nil, 0, Limits{MaxShrink: 1}, false, ReasonEmpty},
		{"mostly rejected", nil, four[:1], 2, Limits{}, false, ReasonNotAList},
		{"mostly rejected, forced", four, four, 5, Limits{}, true, ReasonNotAList},
		{"some rejected", four, four, 4, Limits{}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Judge("f", tc.prev, tc.next, tc.rejected, tc.limits, tc.force)
			if got := reason(err); got != tc.want {
				t.Fatalf("Judge = %v, want reason %q", err, tc.want)
			}
		})
	}
}

// refRemoved is the reference for Removed: a set difference.
func refRemoved(prev, next []netip.Prefix) int {
	in := map[netip.Prefix]bool{}
	for _, p := range next {
		in[p] = true
	}
	n := 0
	for _, p := range prev {
		if !in[p] {
			n++
		}
	}
	return n
}

// FuzzJudge: whatever the previous list and the new body, a list accepted
// without force never holds fewer of the previous entries than the limits
// allow, is never empty when the feed was not (unless allowed), is never
// binary or markup or mostly rejected lines; and a refusal always has one
// of those grounds.
func FuzzJudge(f *testing.F) {
	f.Add([]byte(drop), []byte(drop), uint8(50), false, false)
	f.Add([]byte("192.0.2.1\n192.0.2.2\n192.0.2.3\n"), []byte("192.0.2.1\n"), uint8(50), false, false)
	f.Add([]byte("192.0.2.1\n"), []byte(""), uint8(50), true, false)
	f.Add([]byte("192.0.2.1\n"), []byte("<html>"), uint8(100), true, true)
	f.Add([]byte("10.0.0.0/24\n10.0.0.1\n"), []byte("x\ny\n10.0.0.1\n"), uint8(0), false, false)
	f.Fuzz(func(t *testing.T, prevBody, body []byte, pct uint8, allowEmpty, force bool) {
		prevRes, err := Parse(bytes.NewReader(prevBody), "prev", listfile.Options{})
		if err != nil {
			prevRes = Result{}
		}
		prev := prevRes.Prefixes
		limits := Limits{MaxShrink: float64(pct%101) / 100, AllowEmpty: allowEmpty}
		wantMax := len(prev) * int(pct%101) / 100 // exact floor of the share
		if pct%101 == 0 {
			wantMax = len(prev) / 2
		}
		res, err := Parse(bytes.NewReader(body), "next", listfile.Options{})
		if err != nil {
			if reason(err) != ReasonNotAList || !looksBinaryOrMarkup(body) {
				t.Fatalf("Parse(%q) = %v", body, err)
			}
			return
		}
		next := res.Prefixes
		removed := refRemoved(prev, next)
		if got := Removed(prev, next); got != removed {
			t.Fatalf("Removed = %d, reference %d", got, removed)
		}
		err = Judge("f", prev, next, res.RejectedCount, limits, force)
		mostlyRejected := res.RejectedCount > 0 && res.RejectedCount > len(next)
		emptied := len(next) == 0 && len(prev) > 0
		switch r := reason(err); r {
		case "":
			if looksBinaryOrMarkup(body) || mostlyRejected {
				t.Fatalf("accepted %q (%d rejected lines, %d entries)", body, res.RejectedCount, len(next))
			}
			if !force {
				if emptied && !allowEmpty {
					t.Fatalf("accepted an empty list replacing %d entries", len(prev))
				}
				if removed > wantMax && !(emptied && allowEmpty) {
					t.Fatalf("accepted removing %d of %d entries with max_shrink %d%% (at most %d)", removed, len(prev), pct%101, wantMax)
				}
				if len(next) < len(prev)-wantMax && !(emptied && allowEmpty) {
					t.Fatalf("accepted set of %d smaller than allowed (%d of %d)", len(next), len(prev)-wantMax, len(prev))
				}
			}
		case ReasonNotAList:
			if !mostlyRejected {
				t.Fatalf("refused as not a list: %v", err)
			}
		case ReasonEmpty:
			if force || allowEmpty || !emptied {
				t.Fatalf("refused as empty: %v (force %v, allowEmpty %v, prev %d next %d)", err, force, allowEmpty, len(prev), len(next))
			}
		case ReasonShrink:
			if force || removed <= wantMax || len(next) == 0 {
				t.Fatalf("refused as shrinking: %v (removed %d, allowed %d)", err, removed, wantMax)
			}
		default:
			t.Fatalf("unexpected %v", err)
		}
	})
}

// A seeded sequence of fetches, mixing good lists, shrunken ones, empty
// ones and garbage: the feed's entries never shrink by more than the
// limit in one step, and never to nothing.
func TestJudgeSequence(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	var cur []netip.Prefix
	limits := Limits{}
	accepted, refused := 0, map[string]int{}
	for step := range 2000 {
		var body strings.Builder
		switch r.IntN(6) {
		case 0:
			body.WriteString("<html>oops</html>")
		case 1:
			// nothing
		case 2:
			for range r.IntN(20) {
				body.WriteString("garbage line\n")
			}
			fallthrough
		default:
			for range r.IntN(64) {
				fmt.Fprintf(&body, "192.0.%d.%d\n", r.IntN(2), r.IntN(32))
			}
		}
		res, err := Parse(strings.NewReader(body.String()), "seq", listfile.Options{})
		if err == nil {
			err = Judge("seq", cur, res.Prefixes, res.RejectedCount, limits, false)
		}
		if err != nil {
			refused[reason(err)]++
			continue
		}
		if len(cur) > 0 && (len(res.Prefixes) == 0 || refRemoved(cur, res.Prefixes) > len(cur)/2) {
			t.Fatalf("step %d: %d entries replaced by %d (%d removed)", step, len(cur), len(res.Prefixes), refRemoved(cur, res.Prefixes))
		}
		cur = res.Prefixes
		accepted++
	}
	if accepted == 0 || refused[ReasonNotAList] == 0 || refused[ReasonEmpty] == 0 || refused[ReasonShrink] == 0 {
		t.Fatalf("the sequence did not exercise every outcome: %d accepted, refused %v", accepted, refused)
	}
}
