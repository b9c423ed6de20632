// Package client talks to blocklistd over mutually authenticated TLS: agents
// follow the blocklist with [Client.Sync], reporters (agents with detectors,
// the bastion) send offenders with [Client.Report], and administrators change
// decisions with [Client.Ban], [Client.Unban], [Client.Allow] and
// [Client.List].
//
// The client certificate decides what a caller may do: blocklistd reads the
// role from URI SANs of the form urn:rampart:role:<role> (agent, reporter,
// admin). The package is small on purpose: it links neither the server nor
// any store, so it fits in every host's agent.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/wire"
)

// Config says where blocklistd is and how to authenticate to it.
type Config struct {
	// URL is blocklistd's base URL, e.g. https://blocklistd.internal:8443.
	URL string
	// TLS holds the client certificate and the CA that signed the server's.
	TLS *tls.Config
	// HTTPClient, when set, is used instead of one built from TLS (its
	// transport must present the client certificate).
	HTTPClient *http.Client
	// MaxEntries bounds a decoded update (default 16,777,216 prefixes).
	MaxEntries int
}

// Client is safe for concurrent use.
type Client struct {
	base       *url.URL
	http       *http.Client
	maxEntries int
}

// Errors a caller may branch on (with errors.Is).
var (
	// ErrRateLimited: blocklistd refused a report because this reporter
	// sends too many; retry later.
	ErrRateLimited = errors.New("blocklistd: rate limited")
	// ErrForbidden: the certificate lacks the role the call needs, or was
	// refused.
	ErrForbidden = errors.New("blocklistd: forbidden")
	// ErrRejected: blocklistd refused the request's content (4xx).
	ErrRejected = errors.New("blocklistd: request rejected")
)

// StatusError is an answer other than success; it wraps one of the
// sentinel errors above when one applies.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("blocklistd answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Unwrap maps the status code onto a sentinel error.
func (e *StatusError) Unwrap() error {
	switch {
	case e.Code == http.StatusTooManyRequests:
		return ErrRateLimited
	case e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden:
		return ErrForbidden
	case e.Code >= 400 && e.Code < 500:
		return ErrRejected
	}
	return nil
}

// New checks cfg and returns a Client. It does not connect.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("blocklistd client: url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("blocklistd client: url %q: want https://host:port", cfg.URL)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		if cfg.TLS == nil {
			return nil, errors.New("blocklistd client: no TLS configuration (mTLS is required)")
		}
		// HTTP/1.1 on purpose: a long poll holds one connection whatever the
		// protocol, and an HTTP/1.1 connection costs blocklistd a fraction of
		// an HTTP/2 one, which matters with thousands of agents.
		hc = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     cfg.TLS.Clone(),
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, http: hc, maxEntries: cfg.MaxEntries}, nil
}

// Update is what Sync returns: either a full snapshot (Full, Entries) or a
// delta (Add, Remove) that turns the set at the caller's version into the
// set at Version. An update with Version equal to the caller's and nothing
// in it means nothing changed during the wait.
type Update struct {
	Version uint64
	Full    bool
	Entries []netip.Prefix // when Full
	Add     []netip.Prefix // when !Full
	Remove  []netip.Prefix // when !Full
}

// Sync long-polls: it returns at once when the server has something newer
// than have, else waits up to wait (the server caps it); have==0 asks for a
// full snapshot. The published set never overlaps itself and already has
// the allowlist subtracted.
func (c *Client) Sync(ctx context.Context, have uint64, wait time.Duration) (Update, error) {
	q := url.Values{"have": {strconv.FormatUint(have, 10)}, "wait": {wait.String()}}
	// The request may legitimately last wait; give the network some slack.
	ctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(wire.PathSync)+"?"+q.Encode(), nil)
	if err != nil {
		return Update{}, err
	}
	req.Header.Set("Accept", wire.MediaType)
	resp, err := c.http.Do(req)
	if err != nil {
		return Update{}, fmt.Errorf("blocklistd sync: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return Update{Version: have}, nil
	case http.StatusOK:
	default:
		return Update{}, statusError(resp)
	}
	u, err := wire.Decode(resp.Body, c.maxEntries)
	if err != nil {
		return Update{}, fmt.Errorf("blocklistd sync: %w", err)
	}
	return Update{Version: u.Version, Full: u.Full, Entries: u.Entries, Add: u.Add, Remove: u.Remove}, nil
}

// Report is one offender seen by a reporter: Count events (failed logins,
// bad requests) within Window. Window zero means the server's threshold
// window.
type Report struct {
	Addr   netip.Addr
	Reason string
	Count  int
	Window time.Duration
}

// Report sends r. Errors wrap ErrRateLimited, ErrForbidden or ErrRejected
// when the server answered with the corresponding status.
func (c *Client) Report(ctx context.Context, r Report) error {
	body := wire.Report{Addr: r.Addr.String(), Reason: r.Reason, Count: r.Count}
	if r.Window > 0 {
		body.Window = r.Window.String()
	}
	return c.postJSON(ctx, wire.PathReport, body, nil)
}

// Ban adds a manual decision for prefix; ttl zero means the server default.
// The server refuses a prefix covering one of the fleet's own hosts (an IP
// SAN of an agent certificate) unless [Force] is given.
func (c *Client) Ban(ctx context.Context, prefix netip.Prefix, ttl time.Duration, reason string, opts ...BanOption) error {
	b := wire.Ban{Prefix: prefix.String(), Reason: reason}
	if ttl > 0 {
		b.TTL = ttl.String()
	}
	var o banOptions
	for _, opt := range opts {
		opt(&o)
	}
	path := wire.PathBan
	if o.force {
		path += "?force=1"
	}
	return c.postJSON(ctx, path, b, nil)
}

// BanOption changes what Ban asks for.
type BanOption func(*banOptions)

type banOptions struct{ force bool }

// Force bans even a prefix that covers one of the fleet's own hosts.
func Force() BanOption { return func(o *banOptions) { o.force = true } }

// Unban removes every decision on exactly prefix.
func (c *Client) Unban(ctx context.Context, prefix netip.Prefix) error {
	return c.postJSON(ctx, wire.PathUnban, wire.PrefixRequest{Prefix: prefix.String()}, nil)
}

// Allow adds prefix to the allowlist, which wins over every decision.
func (c *Client) Allow(ctx context.Context, prefix netip.Prefix, reason string) error {
	return c.postJSON(ctx, wire.PathAllow, wire.PrefixRequest{Prefix: prefix.String(), Reason: reason}, nil)
}

// Unallow removes prefix from the allowlist.
func (c *Client) Unallow(ctx context.Context, prefix netip.Prefix) error {
	return c.postJSON(ctx, wire.PathUnallow, wire.PrefixRequest{Prefix: prefix.String()}, nil)
}

// Decision is one active ban.
type Decision struct {
	Prefix  netip.Prefix `json:"prefix"`
	Action  string       `json:"action"`
	Source  string       `json:"source"`
	Reason  string       `json:"reason,omitempty"`
	Created time.Time    `json:"created"`
	Expires time.Time    `json:"expires,omitzero"` // zero: never
}

// AllowEntry is one allowlisted prefix.
type AllowEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Reason  string       `json:"reason,omitempty"`
	Created time.Time    `json:"created"`
}

// Listing is the server's decisions and allowlist at Version.
type Listing struct {
	Version   uint64       `json:"version"`
	Decisions []Decision   `json:"decisions"`
	Allow     []AllowEntry `json:"allow"`
	// Total counts the decisions the filter kept before its limit.
	Total int `json:"total"`
}

// List returns every decision and allowlist entry.
func (c *Client) List(ctx context.Context) (Listing, error) {
	return c.ListFiltered(ctx, ListFilter{})
}

// ListFilter narrows a listing; the zero value lists everything.
type ListFilter struct {
	// Source keeps decisions of this source ("manual", "report",
	// "feed:NAME"; "feed:" for every feed; "allow" for the allowlist only).
	Source string
	// Prefix keeps entries overlapping it: inside it, or covering it.
	Prefix netip.Prefix
	// Limit keeps the first Limit decisions (and allowlist entries) in
	// address order; 0 means all. Listing.Total counts them all.
	Limit int
}

// ListFiltered returns the decisions and allowlist entries f keeps; the
// server does the filtering.
func (c *Client) ListFiltered(ctx context.Context, f ListFilter) (Listing, error) {
	q := url.Values{}
	if f.Source != "" {
		q.Set("source", f.Source)
	}
	if f.Prefix.IsValid() {
		q.Set("prefix", f.Prefix.String())
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	u := c.endpoint(wire.PathList)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Listing{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Listing{}, fmt.Errorf("blocklistd list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Listing{}, statusError(resp)
	}
	var l struct {
		wire.List
		Total *int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return Listing{}, fmt.Errorf("blocklistd list: %w", err)
	}
	out := Listing{Version: l.Version, Decisions: []Decision{}, Allow: []AllowEntry{}, Total: len(l.Decisions)}
	if l.Total != nil {
		out.Total = *l.Total
	}
	for _, d := range l.Decisions {
		p, err := netip.ParsePrefix(d.Prefix)
		if err != nil {
			return Listing{}, fmt.Errorf("blocklistd list: %w", err)
		}
		nd := Decision{Prefix: p, Action: d.Action, Source: d.Source, Reason: d.Reason, Created: d.Created}
		if d.Expires != nil {
			nd.Expires = *d.Expires
		}
		out.Decisions = append(out.Decisions, nd)
	}
	for _, a := range l.Allow {
		p, err := netip.ParsePrefix(a.Prefix)
		if err != nil {
			return Listing{}, fmt.Errorf("blocklistd list: %w", err)
		}
		out.Allow = append(out.Allow, AllowEntry{Prefix: p, Reason: a.Reason, Created: a.Created})
	}
	return out, nil
}

func (c *Client) endpoint(path string) string {
	return c.base.String() + path
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("blocklistd %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(resp)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return nil
}

func statusError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e wire.Error
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &StatusError{Code: resp.StatusCode, Message: msg}
}
