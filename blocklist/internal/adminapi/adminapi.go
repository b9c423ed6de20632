// Package adminapi holds the JSON bodies and paths of blocklistd's admin
// endpoints beyond ban, unban, allow and list (whose bodies live in wire):
// feeds, bulk import and the fleet. Shared by the server and the client.
package adminapi

import "time"

// Paths.
const (
	PathFeeds     = "/v1/admin/feeds"      // GET: []FeedStatus
	PathFeedFetch = "/v1/admin/feed/fetch" // POST FeedFetch: FeedOutcome
	PathImport    = "/v1/admin/import"     // POST a list file or CSV: ImportResult
	PathFleet     = "/v1/admin/fleet"      // GET: []FleetHost
)

// FeedStatus is one configured feed as the serving replica sees it.
type FeedStatus struct {
	Name        string    `json:"name"`
	URL         string    `json:"url"`
	Entries     int       `json:"entries"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError and LastReason describe the last failed or refused fetch
	// since the last success; Failures counts them.
	LastError  string `json:"last_error,omitempty"`
	LastReason string `json:"last_reason,omitempty"`
	Failures   int    `json:"failures"`
}

// FeedFetch asks for a fetch now; Accept takes an empty or shrunk list
// that the feed's limits would refuse.
type FeedFetch struct {
	Feed   string `json:"feed"`
	Accept bool   `json:"accept,omitempty"`
}

// FeedOutcome is what one fetch did.
type FeedOutcome struct {
	Feed    string `json:"feed"`
	Status  string `json:"status"` // loaded, not modified, refused
	Reason  string `json:"reason,omitempty"`
	Error   string `json:"error,omitempty"`
	Entries int    `json:"entries"`
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
}

// ImportResult answers an import. Nothing is written when Rejected is not
// empty, unless the request asked to skip invalid lines.
type ImportResult struct {
	Imported      int      `json:"imported"`
	RejectedCount int      `json:"rejected_count"`
	Rejected      []string `json:"rejected,omitempty"` // the first ones, "FILE:LINE: why"
	Version       uint64   `json:"version"`
}

// FleetHost is an address blocklistd learned from an agent's certificate.
type FleetHost struct {
	Addr     string    `json:"addr"`
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
}
