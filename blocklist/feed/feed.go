// Package feed fetches public blocklists (Spamhaus DROP, FireHOL netsets,
// any list file) over HTTP with conditional GET, or from a local file, and
// parses them with [listfile.Parse]: a bad line is counted and skipped,
// never fatal; a prefix wider than the feed's limit is one such bad line.
//
// # Feeds never shrink silently
//
// A feed that answers 200 with an error page, random bytes or nothing at
// all must not wipe what it listed before. [Fetcher.Fetch] refuses bodies
// that are not a list (binary data, HTML or XML) with a [*Refusal], and
// [Judge] decides whether a parsed list may replace the feed's current
// entries: not when most of its lines were rejected, not when it is empty
// while the feed was not, and not when it drops more than
// [Limits.MaxShrink] of the entries at once — unless the caller says the
// change is wanted ([Limits.AllowEmpty], or force).
package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/pkg/listfile"
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
	// Limits bound how much one fetch may take away (see [Judge]).
	Limits Limits
}

// Result is one fetch.
type Result struct {
	// NotModified: the server answered 304; Prefixes is empty and the
	// previous content stands.
	NotModified bool
	// Prefixes are masked, sorted and without duplicates.
	Prefixes []netip.Prefix
	Rejected []listfile.LineError
	// RejectedCount counts every rejected line (Rejected keeps the first
	// ones only).
	RejectedCount int
	// Entries counts the accepted entries as listed, duplicates included.
	Entries int
	Lines   int

	// validators of this body, recorded by Fetcher.Commit
	etag, lastModified string
	stamp              fileStamp
}

// Fetcher fetches one feed, remembering its validators between calls. It
// is not safe for concurrent use.
type Fetcher struct {
	Feed   Feed
	Client *http.Client

	etag, lastModified string
	stamp              fileStamp
}

// Fetch downloads the feed, conditionally when it was fetched before. A URL
// file:///path reads a local file, "not modified" while its size and
// modification time stay the same. A body that is not a list is refused
// with a [*Refusal] of reason [ReasonNotAList].
//
// Fetch does not remember the body's validators: call [Fetcher.Commit]
// once the result is stored, so that a result the caller refused is
// fetched again in full next time instead of answered "not modified".
func (f *Fetcher) Fetch(ctx context.Context) (Result, error) {
	if strings.HasPrefix(f.Feed.URL, "file:") {
		return f.fetchFile()
	}
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
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && markupTypes[mt] {
		return Result{}, &Refusal{Feed: f.Feed.Name, Reason: ReasonNotAList, Detail: fmt.Sprintf("the server sent %s, not a list", mt)}
	}
	res, err := f.read(resp.Body)
	if err != nil {
		return Result{}, err
	}
	res.etag = resp.Header.Get("ETag")
	res.lastModified = resp.Header.Get("Last-Modified")
	return res, nil
}

var markupTypes = map[string]bool{"text/html": true, "application/xhtml+xml": true, "application/xml": true, "text/xml": true, "application/json": true}

// fileStamp identifies a version of a local feed file.
type fileStamp struct {
	size int64
	mod  time.Time
}

func (f *Fetcher) fetchFile() (Result, error) {
	u, err := url.Parse(f.Feed.URL)
	if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
		return Result{}, fmt.Errorf("feed %s: url %q: want file:///absolute/path", f.Feed.Name, f.Feed.URL)
	}
	fh, err := os.Open(u.Path)
	if err != nil {
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("feed %s: %s is not a regular file", f.Feed.Name, u.Path)
	}
	stamp := fileStamp{size: fi.Size(), mod: fi.ModTime()}
	if stamp == f.stamp {
		return Result{NotModified: true}, nil
	}
	res, err := f.read(fh)
	if err != nil {
		return Result{}, err
	}
	res.stamp = stamp
	return res, nil
}

// read parses a body of at most MaxBytes.
func (f *Fetcher) read(r io.Reader) (Result, error) {
	max := f.Feed.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	counted := &countingReader{r: io.LimitReader(r, max+1)}
	res, err := Parse(counted, f.Feed.Name, f.Feed.Parse)
	if err != nil {
		var rf *Refusal
		if errors.As(err, &rf) {
			rf.Feed = f.Feed.Name
			return Result{}, rf
		}
		return Result{}, fmt.Errorf("feed %s: %w", f.Feed.Name, err)
	}
	if counted.n > max {
		return Result{}, fmt.Errorf("feed %s: body larger than %d bytes; refused", f.Feed.Name, max)
	}
	return res, nil
}

// Commit records res's validators (ETag, Last-Modified, a file's size and
// time), so that the next Fetch is conditional on it.
func (f *Fetcher) Commit(res Result) {
	if res.NotModified {
		return
	}
	f.etag, f.lastModified, f.stamp = res.etag, res.lastModified, res.stamp
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
// deduplicated. It refuses with a [*Refusal] of reason [ReasonNotAList] a
// body holding NUL bytes (binary) or starting with '<' (HTML, XML);
// otherwise the error is only ever a read error.
func Parse(r io.Reader, name string, opts listfile.Options) (Result, error) {
	sn := &sniffer{r: r}
	res, err := listfile.Parse(sn, name, opts)
	if sn.why != "" {
		return Result{}, &Refusal{Feed: name, Reason: ReasonNotAList, Detail: sn.why}
	}
	if err != nil {
		return Result{}, err
	}
	ps := make([]netip.Prefix, 0, len(res.Prefixes))
	for _, p := range res.Prefixes {
		ps = append(ps, p.Masked())
	}
	slices.SortFunc(ps, ComparePrefix)
	return Result{Prefixes: slices.Compact(ps), Rejected: res.Rejected, RejectedCount: res.RejectedCount,
		Entries: len(res.Prefixes), Lines: res.Lines}, nil
}

// ComparePrefix orders prefixes by address, then by length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// sniffer notes, while the parser reads, whether the body looks like
// anything but a list: a NUL byte anywhere, or markup first.
type sniffer struct {
	r       io.Reader
	started bool
	why     string
}

func (s *sniffer) Read(p []byte) (int, error) {
	if s.why != "" {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	b := p[:n]
	if !s.started {
		t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
		if len(t) > 0 {
			s.started = true
			if t[0] == '<' {
				s.why = fmt.Sprintf("the body starts with %q: HTML or XML, not a list", clipBytes(t, 16))
				return 0, io.EOF
			}
		}
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		s.why = "the body holds NUL bytes: binary data, not a list"
		return 0, io.EOF
	}
	return n, err
}

func clipBytes(b []byte, n int) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	return string(b[:min(len(b), n)])
}
