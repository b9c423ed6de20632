package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
)

// FeedStatus is one configured feed as the answering blocklistd replica
// sees it: its entries, last attempt and success, and the last failure
// or refusal since then (LastReason: fetch, not_a_list, empty, shrink,
// store).
type FeedStatus = adminapi.FeedStatus

// FeedOutcome is what a requested fetch did: Status "loaded", "not
// modified" or "refused" (with Reason and Error).
type FeedOutcome = adminapi.FeedOutcome

// Feeds lists the configured feeds.
func (c *Client) Feeds(ctx context.Context) ([]FeedStatus, error) {
	var out []FeedStatus
	return out, c.getJSON(ctx, adminapi.PathFeeds, &out)
}

// FetchFeed fetches feed now. With accept, a list its limits refuse for
// being empty or shrinking too much is taken anyway (one that is not a
// list never is).
func (c *Client) FetchFeed(ctx context.Context, feed string, accept bool) (FeedOutcome, error) {
	var out FeedOutcome
	return out, c.postJSON(ctx, adminapi.PathFeedFetch, adminapi.FeedFetch{Feed: feed, Accept: accept}, &out)
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(path), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("blocklistd %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("blocklistd %s: %w", path, err)
	}
	return nil
}

// FleetHost is an address of the fleet's own hosts, learned from an
// agent certificate's IP SANs.
type FleetHost = adminapi.FleetHost

// Fleet lists the fleet hosts blocklistd knows.
func (c *Client) Fleet(ctx context.Context) ([]FleetHost, error) {
	var out []FleetHost
	return out, c.getJSON(ctx, adminapi.PathFleet, &out)
}

// ImportOptions say how blocklistd reads and applies an import.
type ImportOptions struct {
	// Name names the input in refused lines (a file name, "-").
	Name string
	// Format: "list", "csv" (prefix,ttl,reason) or "" to let the server
	// tell from the first entry.
	Format string
	// TTL and Reason apply to entries without their own; TTL 0 means the
	// server's manual_ttl.
	TTL    time.Duration
	Reason string
	// SkipInvalid imports the valid entries when some are refused;
	// otherwise nothing is imported.
	SkipInvalid bool
	// Force bans entries covering the fleet's own hosts too.
	Force bool
}

// ImportResult is what an import did; Rejected holds the first refused
// lines as "NAME:LINE: why: text".
type ImportResult = adminapi.ImportResult

// Import sends a list file or CSV of bans; blocklistd applies them in one
// durable commit and publishes them as one change.
func (c *Client) Import(ctx context.Context, body io.Reader, o ImportOptions) (ImportResult, error) {
	q := url.Values{}
	for k, v := range map[string]string{"name": o.Name, "format": o.Format, "reason": o.Reason} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.TTL > 0 {
		q.Set("ttl", o.TTL.String())
	}
	if o.SkipInvalid {
		q.Set("skip_invalid", "1")
	}
	if o.Force {
		q.Set("force", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(adminapi.PathImport)+"?"+q.Encode(), body)
	if err != nil {
		return ImportResult{}, err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.http.Do(req)
	if err != nil {
		return ImportResult{}, fmt.Errorf("blocklistd import: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ImportResult{}, statusError(resp)
	}
	var out ImportResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return ImportResult{}, fmt.Errorf("blocklistd import: %w", err)
	}
	return out, nil
}
