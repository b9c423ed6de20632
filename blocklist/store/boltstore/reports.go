package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report events live in bucket "reports": the key is the prefix text, the
// value a run of events of eventSize bytes each (unix nanoseconds, then the
// count), in no particular order.
const (
	eventSize = 12
	// Events whose times fall in the same second are stored as one event at
	// the latest of their times, so a key holds at most one event per second
	// of the window however many reports arrive; an event may therefore
	// count up to a second longer than the window, never shorter.
	coalesce = time.Second
	// A key whose newest event is older than staleAfter (or than the
	// window, if longer) is deleted by the sweep.
	staleAfter = 24 * time.Hour
	// Every commit examines sweepPerReport keys per report it counts, plus
	// sweepPerCommit, for staleness, continuing where the previous commit
	// stopped. A commit adds at most one key per report, so a full pass
	// over n keys adds at most n/sweepPerReport keys and the bucket stays
	// near the number of addresses reported in the last staleAfter.
	sweepPerReport = 2
	sweepPerCommit = 16
)

// errClosed is returned by CountReport after Close.
var errClosed = errors.New("store closed")

// reportCall is one CountReport waiting for its commit.
type reportCall struct {
	key    netip.Prefix
	count  int
	at     time.Time
	window time.Duration

	// Set by the committer before done is closed.
	total int
	err   error
	done  chan struct{}
}

// reportQueue hands reports to one committer goroutine, which writes all
// that are waiting in one transaction: a lone report waits for one fsync,
// and reports arriving during a commit share the next. (bolt's DB.Batch
// would add up to MaxBatchDelay to every lone report, and closes a batch
// before it gets the write lock, so reports arriving during a commit split
// into several small batches.)
type reportQueue struct {
	mu      sync.Mutex
	pending []*reportCall
	closed  bool

	wake    chan struct{} // capacity 1: "pending may be non-empty"
	quit    chan struct{}
	stopped chan struct{}
}

func (q *reportQueue) start(commit func([]*reportCall)) {
	q.wake = make(chan struct{}, 1)
	q.quit = make(chan struct{})
	q.stopped = make(chan struct{})
	go q.run(commit)
}

func (q *reportQueue) run(commit func([]*reportCall)) {
	defer close(q.stopped)
	for {
		var quit bool
		select {
		case <-q.wake:
		case <-q.quit:
			quit = true
		}
		q.mu.Lock()
		calls := q.pending
		q.pending = nil
		q.mu.Unlock()
		if len(calls) > 0 {
			commit(calls)
		}
		if quit {
			return
		}
	}
}

// submit queues c; it reports false once the queue is stopped.
func (q *reportQueue) submit(c *reportCall) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// stop refuses new reports and returns once every queued one is committed.
func (q *reportQueue) stop() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.stopped
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.quit)
	<-q.stopped
}

// CountReport implements store.Store. The report is durable when
// CountReport returns without error: it is committed and synced with every
// other report that was waiting, in one transaction. If ctx ends first,
// CountReport returns ctx's error and the report may or may not be counted.
//
// Events older than the window are dropped from key as it is written;
// reports of key within the same second are stored as one event, which may
// count up to a second past the window; a key not reported for 24 hours
// (or the window, if longer) is deleted by later commits.
func (s *Store) CountReport(ctx context.Context, key netip.Prefix, count int, at time.Time, window time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("boltstore: count report for %s: %w", key, err)
	}
	if count < 0 || count > math.MaxInt32 {
		return 0, fmt.Errorf("boltstore: count report for %s: count %d out of range", key, count)
	}
	c := &reportCall{key: key, count: count, at: at, window: window, done: make(chan struct{})}
	if !s.reports.submit(c) {
		return 0, fmt.Errorf("boltstore: count report for %s: %w", key, errClosed)
	}
	select {
	case <-c.done:
		return c.total, c.err
	case <-ctx.Done():
		return 0, fmt.Errorf("boltstore: count report for %s: not confirmed: %w", key, ctx.Err())
	}
}

// countBatch counts calls in one write transaction and completes them.
func (s *Store) countBatch(calls []*reportCall) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bReports)
		now, keep := calls[0].at, staleAfter
		for _, c := range calls {
			// Assigned, not accumulated: a failed transaction leaves no
			// trace in calls beyond the error set below.
			var err error
			c.total, c.err, err = countEvents(b, c)
			if err != nil {
				return err
			}
			if c.at.After(now) {
				now = c.at
			}
			keep = max(keep, c.window)
		}
		return s.sweep(b, sweepPerCommit+sweepPerReport*len(calls), now.Add(-keep).UnixNano())
	})
	for _, c := range calls {
		if err != nil {
			c.total, c.err = 0, fmt.Errorf("boltstore: count report for %s: %w", c.key, err)
		}
		close(c.done)
	}
}

// countEvents adds c's event to its key, drops the key's events outside
// the window and returns their total. A corrupt value fails only c
// (callErr); a failed write fails the transaction (err).
func countEvents(b *bolt.Bucket, c *reportCall) (total int, callErr, err error) {
	k := []byte(c.key.String())
	old := b.Get(k)
	if len(old)%eventSize != 0 {
		return 0, fmt.Errorf("boltstore: count report for %s: stored events are corrupt (%d bytes)", c.key, len(old)), nil
	}
	at := c.at.UnixNano()
	cutoff := c.at.Add(-c.window).UnixNano()
	out := make([]byte, 0, len(old)+eventSize)
	merged := false
	for i := 0; i < len(old); i += eventSize {
		t, n := decodeEvent(old[i:])
		if t <= cutoff {
			continue
		}
		if !merged && c.count > 0 && floorDiv(t, int64(coalesce)) == floorDiv(at, int64(coalesce)) {
			t, n = max(t, at), min(n+int64(c.count), math.MaxInt32)
			merged = true
		}
		total += int(n)
		out = appendEvent(out, t, n)
	}
	// A report of no events adds none (and extends no event's life).
	if !merged && c.count > 0 && at > cutoff {
		total += c.count
		out = appendEvent(out, at, int64(c.count))
	}
	if len(out) == 0 {
		return 0, nil, b.Delete(k)
	}
	return total, nil, b.Put(k, out)
}

// sweep examines up to n keys after the previous sweep's last, deleting
// those with no event after cutoff (or a corrupt value), and wraps to the
// first key after the last.
func (s *Store) sweep(b *bolt.Bucket, n int, cutoff int64) error {
	c := b.Cursor()
	k, v := c.First()
	if s.sweepFrom != nil {
		k, v = c.Seek(s.sweepFrom)
	}
	var stale [][]byte
	for ; k != nil && n > 0; k, v = c.Next() {
		n--
		if newest(v) <= cutoff {
			stale = append(stale, append([]byte(nil), k...))
		}
	}
	if k == nil {
		s.sweepFrom = nil
	} else {
		s.sweepFrom = append(s.sweepFrom[:0], k...)
	}
	// Deleted after the walk: bolt's cursor may skip a key after Delete.
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// newest returns the latest event time in v, or math.MinInt64 when v holds
// no whole event.
func newest(v []byte) int64 {
	last := int64(math.MinInt64)
	if len(v)%eventSize != 0 {
		return last
	}
	for i := 0; i < len(v); i += eventSize {
		t, _ := decodeEvent(v[i:])
		last = max(last, t)
	}
	return last
}

func decodeEvent(b []byte) (unixNano, count int64) {
	return int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint32(b[8:]))
}

func appendEvent(b []byte, unixNano, count int64) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano))
	return binary.BigEndian.AppendUint32(b, uint32(count))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
