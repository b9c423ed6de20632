// Package feed fetches public blocklists (Spamhaus DROP, FireHOL netsets,
// any list file) over HTTP with conditional GET, and parses them with
// [listfile.Parse]: a bad line is counted and skipped, never fatal; a
// prefix wider than the feed's limit is one such bad line.
package feed

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/rampart-sec/rampart/blocklist/listfile"
)

// DefaultMaxBytes bounds one feed body.
const DefaultMaxBytes = 64 << 20

// Feed describes one public list.
type Feed struct {
	Name     string
	URL      string
	Interval time.Duration
	// Parse bounds prefix widths (MaxBits4/MaxBits6) and line lengths.
	Parse listfile.Options
	// MaxBytes bounds the body; 0 means DefaultMaxBytes.
	MaxBytes int64
}

// Result is one fetch.
type Result struct {
	// NotModified: the server answered 304; Prefixes is empty and the
	// previous content stands.
	NotModified bool
	// Prefixes are masked, sorted and without duplicates.
	Prefixes []netip.Prefix
	Rejected []listfile.LineError
	Lines    int
}

// Fetcher fetches one feed, remembering its validators between calls. It
// is not safe for concurrent use.
type Fetcher struct {
	Feed   Feed
	Client *http.Client

	etag, lastModified string
}

// Fetch downloads the feed, conditionally when it was fetched before.
func (f *Fetcher) Fetch(ctx context.Context) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.Feed.URL, nil)
	if err != nil {
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	if f.etag != "" {
		req.Header.Set("If-None-Match", f.etag)
	}
	if f.lastModified != "" {
		req.Header.Set("If-Modified-Since", f.lastModified)
	}
	req.Header.Set("User-Agent", "rampart-blocklistd")
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return Result{NotModified: true}, nil
	case http.StatusOK:
	default:
		return Result{}, fmt.Errorf("feed %s: GET %s: HTTP %s", f.Feed.Name, f.Feed.URL, resp.Status)
	}
	max := f.Feed.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	body := io.LimitReader(resp.Body, max+1)
	counted := &countingReader{r: body}
	res, err := Parse(counted, f.Feed.Name, f.Feed.Parse)
	if err != nil {
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	if counted.n > max {
		return Result{}, fmt.Errorf("feed %s: body larger than %d bytes; refused", f.Feed.Name, max)
	}
	// Remember validators only for a body read in full.
	f.etag = resp.Header.Get("ETag")
	f.lastModified = resp.Header.Get("Last-Modified")
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Parse reads a list file and returns its prefixes masked, sorted and
// deduplicated. The error is only ever a read error.
func Parse(r io.Reader, name string, opts listfile.Options) (Result, error) {
	res, err := listfile.Parse(r, name, opts)
	if err != nil {
		return Result{}, err
	}
	ps := make([]netip.Prefix, 0, len(res.Prefixes))
	for _, p := range res.Prefixes {
		ps = append(ps, p.Masked())
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return Result{Prefixes: slices.Compact(ps), Rejected: res.Rejected, Lines: res.Lines}, nil
}
