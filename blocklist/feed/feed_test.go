package feed

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampart-sec/rampart/pkg/listfile"
)

const drop = `; Spamhaus DROP List 2026/11/22
; Last-Modified: Sun, 22 Nov 2026 00:00:00 GMT
1.10.16.0/20 ; SBL256894
2.56.192.0/22 ; SBL459831
not-an-address ; broken line
0.0.0.0/0 ; far too wide
2.56.192.0/22 ; duplicate
`

func TestFetchConditional(t *testing.T) {
	var gets, conditional atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Sun, 22 Nov 2026 00:00:00 GMT")
		w.Write([]byte(drop))
	}))
	defer srv.Close()
	f := &Fetcher{Feed: Feed{Name: "drop", URL: srv.URL}, Client: srv.Client()}
	res, err := f.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("1.10.16.0/20"), netip.MustParsePrefix("2.56.192.0/22")}
	if len(res.Prefixes) != 2 || res.Prefixes[0] != want[0] || res.Prefixes[1] != want[1] {
		t.Fatalf("prefixes = %v, want %v", res.Prefixes, want)
	}
	if len(res.Rejected) != 2 || res.Rejected[0].Line != 5 || res.Rejected[1].Line != 6 {
		t.Fatalf("rejected = %v, want lines 5 and 6", res.Rejected)
	}
	f.Commit(res)
	res, err = f.Fetch(context.Background())
	if err != nil || !res.NotModified {
		t.Fatalf("second fetch = %+v, %v; want not modified", res, err)
	}
	if conditional.Load() != 1 {
		t.Fatalf("%d conditional requests, want 1", conditional.Load())
	}
}

func TestFetchErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write([]byte(strings.Repeat("10.0.0.1\n", 1000)))
			return
		}
		http.Error(w, "gone", http.StatusGone)
	}))
	defer srv.Close()
	for _, tc := range []struct{ path string }{{"/gone"}, {"/big"}} {
		f := &Fetcher{Feed: Feed{Name: "x", URL: srv.URL + tc.path, MaxBytes: 100}, Client: srv.Client()}
		if _, err := f.Fetch(context.Background()); err == nil {
			t.Errorf("%s: fetch succeeded", tc.path)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(drop))
	f.Add([]byte("2001:db8::/32\n::ffff:10.0.0.1\n10.0.0.1-10.0.0.9\n"))
	f.Add([]byte("\x00\xff#;\n\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(strings.NewReader(string(data)), "fuzz", listfile.Options{})
		var rf *Refusal
		if errors.As(err, &rf) {
			if rf.Reason != ReasonNotAList || !looksBinaryOrMarkup(data) {
				t.Fatalf("refused %q: %v", data, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err) // a strings.Reader never fails
		}
		if looksBinaryOrMarkup(data) {
			t.Fatalf("accepted binary or markup %q", data)
		}
		for i, p := range res.Prefixes {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("invalid prefix %v", p)
			}
			if (p.Addr().Is4() && p.Bits() < listfile.DefaultMaxBits4) || (p.Addr().Is6() && p.Bits() < listfile.DefaultMaxBits6) {
				t.Fatalf("prefix %v wider than the default limit", p)
			}
			if i > 0 && res.Prefixes[i-1] == p {
				t.Fatalf("duplicate %v", p)
			}
		}
	})
}
