package wire

import "time"

// Report is the JSON body of POST /v1/report.
type Report struct {
	Addr   string `json:"addr"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	// Window is a Go duration ("10m"); empty means the server's threshold window.
	Window string `json:"window,omitempty"`
}

// Ban is the JSON body of POST /v1/admin/ban.
type Ban struct {
	Prefix string `json:"prefix"`
	// TTL is a duration ("1h", "7d"); empty means the server's default.
	TTL    string `json:"ttl,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// PrefixRequest is the JSON body of unban, allow and unallow.
type PrefixRequest struct {
	Prefix string `json:"prefix"`
	Reason string `json:"reason,omitempty"`
}

// Decision is one decision as listed by GET /v1/admin/list.
type Decision struct {
	Prefix  string     `json:"prefix"`
	Action  string     `json:"action"`
	Source  string     `json:"source"`
	Reason  string     `json:"reason,omitempty"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Allow is one allowlist entry as listed by GET /v1/admin/list.
type Allow struct {
	Prefix  string    `json:"prefix"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
}

// List is the answer of GET /v1/admin/list.
type List struct {
	Version   uint64     `json:"version"`
	Decisions []Decision `json:"decisions"`
	Allow     []Allow    `json:"allow"`
}

// Error is the JSON body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}
