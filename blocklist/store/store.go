// Package store defines where blocklistd keeps its decisions, allowlist and
// offender history, and the change log that lets several blocklistd
// replicas share one database.
//
// Every write is a batch of [Mutation]s applied atomically by
// [Store.Apply]; the store numbers each batch that changed something with
// the next sequence number and keeps it in a change log. A server never
// updates its in-memory view from what it wrote: it reads the change log
// ([Store.Changes]) after every write and whenever [Store.Notify] fires,
// so its own writes and another replica's are applied the same way, in the
// same order, on every replica.
//
// Two implementations exist: [github.com/rampart-sec/rampart/blocklist/store/boltstore]
// (embedded, one file, one process) and
// [github.com/rampart-sec/rampart/blocklist/store/pgstore] (PostgreSQL,
// several replicas, LISTEN/NOTIFY). The suite in storetest runs against both.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ActionBan is the only action a decision has today.
const ActionBan = "ban"

// Decision is one source's verdict on one prefix. (Prefix, Source) is the key.
type Decision struct {
	Prefix  netip.Prefix `json:"prefix"`
	Action  string       `json:"action"`
	Source  string       `json:"source"` // "manual", "report", "feed:<name>"
	Reason  string       `json:"reason,omitempty"`
	Created time.Time    `json:"created"`
	Expires time.Time    `json:"expires,omitzero"` // zero: never
}

// Allow is one allowlisted prefix; the allowlist wins over every decision.
type Allow struct {
	Prefix  netip.Prefix `json:"prefix"`
	Reason  string       `json:"reason,omitempty"`
	Created time.Time    `json:"created"`
}

// Offender remembers how often a prefix was banned by reports, for
// doubling ban lengths.
type Offender struct {
	Prefix netip.Prefix `json:"prefix"`
	Bans   int          `json:"bans"`
	Last   time.Time    `json:"last"`
}

// Op names a mutation.
type Op string

// The mutations.
const (
	PutDecision    Op = "put-decision"
	DeleteDecision Op = "delete-decision"
	PutAllow       Op = "put-allow"
	DeleteAllow    Op = "delete-allow"
	PutOffender    Op = "put-offender"
)

// Mutation is one change. Put ops carry their record; DeleteDecision names
// Prefix and Source ("" for every source on that prefix) and, when
// IfExpiredBy is set, deletes only decisions whose Expires is set and not
// after it (so a replica expiring a stale view cannot remove a fresh ban);
// DeleteAllow names Prefix.
type Mutation struct {
	Op          Op           `json:"op"`
	Decision    *Decision    `json:"decision,omitempty"`
	Allow       *Allow       `json:"allow,omitempty"`
	Offender    *Offender    `json:"offender,omitempty"`
	Prefix      netip.Prefix `json:"prefix,omitzero"`
	Source      string       `json:"source,omitempty"`
	IfExpiredBy time.Time    `json:"if_expired_by,omitzero"`
}

// Change is one applied batch. Its mutations are the ones that took effect,
// with deletes made exact (one per deleted decision, Source filled in), so
// replaying the change log reproduces the tables.
type Change struct {
	Seq       uint64     `json:"seq"`
	Mutations []Mutation `json:"mutations"`
}

// State is every table at sequence Seq.
type State struct {
	Seq       uint64
	Decisions []Decision
	Allow     []Allow
	Offenders []Offender
}

// ErrCompacted is returned by Changes when the log no longer reaches back
// to the requested sequence; the caller reloads with Load.
var ErrCompacted = errors.New("store: change log compacted past the requested sequence")

// Store is blocklistd's persistence. Implementations are safe for
// concurrent use.
//
// Invariants: sequence numbers start at 1 and have no gaps; a Change is
// visible to Changes only once committed, and never before a change with a
// lower sequence; Load is a consistent view at State.Seq.
type Store interface {
	// Apply applies muts atomically. It returns the change as recorded, or
	// a Change with Seq 0 when nothing took effect.
	Apply(ctx context.Context, muts []Mutation) (Change, error)
	// Load returns every table and the sequence they reflect.
	Load(ctx context.Context) (State, error)
	// Changes returns up to limit changes with Seq > after, in order.
	Changes(ctx context.Context, after uint64, limit int) ([]Change, error)
	// CountReport records count events for key at time at and returns the
	// total recorded for key since at-window, across every replica.
	CountReport(ctx context.Context, key netip.Prefix, count int, at time.Time, window time.Duration) (int, error)
	// Notify is signalled (coalesced) when another writer may have added
	// changes. Single-writer stores return nil.
	Notify() <-chan struct{}
	Close() error
}

// Key is the text key of a decision.
func (d Decision) Key() string { return d.Prefix.String() + "|" + d.Source }

// FleetHost is an address of the fleet's own: an IP SAN of an agent's
// client certificate, seen when the agent connected.
type FleetHost struct {
	Addr     netip.Addr `json:"addr"`
	Name     string     `json:"name"` // the certificate's name
	LastSeen time.Time  `json:"last_seen"`
}

// FleetStore is implemented by stores that remember the fleet's addresses,
// so that blocklistd refuses to ban its own hosts after a restart and on
// every replica.
type FleetStore interface {
	// PutFleetHosts records hosts (by address; the newest LastSeen wins).
	PutFleetHosts(ctx context.Context, hosts []FleetHost) error
	// FleetHosts returns every host seen at or after since.
	FleetHosts(ctx context.Context, since time.Time) ([]FleetHost, error)
}
