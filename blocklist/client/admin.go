package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

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
