// Package boltstore is blocklistd's embedded store: one bbolt file, one
// process.
//
// Everything is durable: decisions, allowlist, offenders and the change log,
// and the report counts behind the fleet threshold. [Store.CountReport]
// returns only once its report is committed and synced to disk, so a crash
// or restart of blocklistd forgets no report; concurrent reports share one
// commit (see [Store.CountReport] for how counts are stored and bounded).
package boltstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	bolt "go.etcd.io/bbolt"
)

var (
	bDecisions = []byte("decisions")
	bAllow     = []byte("allow")
	bOffenders = []byte("offenders")
	bChanges   = []byte("changes")
	bMeta      = []byte("meta")
	bReports   = []byte("reports")
	kSeq       = []byte("seq")
)

// The change log keeps at most DefaultRetain changes and about MaxLogBytes;
// a reader further behind reloads the whole state.
const (
	DefaultRetain = 10_000
	MaxLogBytes   = 64 << 20
)

// initialMmap is the file mapping blocklistd starts with.
const initialMmap = 1 << 30

// Store is a bbolt-backed store.Store.
type Store struct {
	db     *bolt.DB
	retain uint64
	// last is the change this process committed last: the reader that
	// follows its own writes (blocklistd, right after each Apply) gets it
	// without decoding it again (a 100,000-ban import is 25 MB of JSON).
	last atomic.Pointer[store.Change]

	reports   reportQueue
	sweepFrom []byte // the report key the next sweep starts at; only the committer touches it
}

// Open opens or creates the database at path. It fails at once, rather
// than waiting, when another process holds the file.
func Open(path string) (*Store, error) {
	// A large initial mapping (address space, not memory) spares the
	// remaps of a growing file: each remap copies every page a write
	// transaction touched onto the heap (122 MB of 708 MB allocated by a
	// 100,000-ban import).
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: initialMmap})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bDecisions, bAllow, bOffenders, bChanges, bMeta, bReports} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	s := &Store{db: db, retain: DefaultRetain}
	s.reports.start(s.countBatch)
	return s, nil
}

// SetRetain changes how many changes the log keeps (for tests).
func (s *Store) SetRetain(n uint64) { s.retain = n }

// Close commits the reports already handed to CountReport, then closes
// the file.
func (s *Store) Close() error {
	s.reports.stop()
	return s.db.Close()
}

// Notify returns nil: nobody else writes this file.
func (s *Store) Notify() <-chan struct{} { return nil }

func be(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// Apply implements store.Store.
func (s *Store) Apply(ctx context.Context, muts []store.Mutation) (store.Change, error) {
	if err := ctx.Err(); err != nil {
		return store.Change{}, err
	}
	var ch store.Change
	err := s.db.Update(func(tx *bolt.Tx) error {
		ch = store.Change{Mutations: make([]store.Mutation, 0, len(muts))}
		var decJSON [][]byte // PutDecision records already encoded, by index in ch.Mutations
		dec, al, off := tx.Bucket(bDecisions), tx.Bucket(bAllow), tx.Bucket(bOffenders)
		for _, m := range muts {
			switch m.Op {
			case store.PutDecision:
				data, err := json.Marshal(m.Decision)
				if err != nil {
					return err
				}
				if err := dec.Put([]byte(m.Decision.Key()), data); err != nil {
					return err
				}
				if len(muts) >= compressAbove {
					// The change log repeats the record: encode it once.
					if decJSON == nil {
						decJSON = make([][]byte, len(muts))
					}
					decJSON[len(ch.Mutations)] = data
				}
				ch.Mutations = append(ch.Mutations, m)
			case store.DeleteDecision:
				var keys [][]byte
				var srcs []string
				prefix := m.Prefix.String() + "|"
				c := dec.Cursor()
				for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
					src := string(k[len(prefix):])
					if m.Source != "" && src != m.Source {
						continue
					}
					if !m.IfExpiredBy.IsZero() {
						var d store.Decision
						if err := json.Unmarshal(v, &d); err != nil {
							return err
						}
						if d.Expires.IsZero() || d.Expires.After(m.IfExpiredBy) {
							continue
						}
					}
					keys = append(keys, append([]byte(nil), k...))
					srcs = append(srcs, src)
				}
				for i, k := range keys {
					if err := dec.Delete(k); err != nil {
						return err
					}
					ch.Mutations = append(ch.Mutations, store.Mutation{Op: store.DeleteDecision, Prefix: m.Prefix, Source: srcs[i]})
				}
			case store.PutAllow:
				if err := put(al, m.Allow.Prefix.String(), m.Allow); err != nil {
					return err
				}
				ch.Mutations = append(ch.Mutations, m)
			case store.DeleteAllow:
				k := []byte(m.Prefix.String())
				if al.Get(k) == nil {
					continue
				}
				if err := al.Delete(k); err != nil {
					return err
				}
				ch.Mutations = append(ch.Mutations, store.Mutation{Op: store.DeleteAllow, Prefix: m.Prefix})
			case store.PutOffender:
				if err := put(off, m.Offender.Prefix.String(), m.Offender); err != nil {
					return err
				}
				ch.Mutations = append(ch.Mutations, m)
			default:
				return fmt.Errorf("boltstore: unknown mutation %q", m.Op)
			}
		}
		if len(ch.Mutations) == 0 {
			return nil
		}
		meta := tx.Bucket(bMeta)
		var seq uint64
		if v := meta.Get(kSeq); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		ch.Seq = seq
		if err := meta.Put(kSeq, be(seq)); err != nil {
			return err
		}
		data, err := encodeMutations(ch.Mutations, decJSON)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bChanges).Put(be(seq), data); err != nil {
			return err
		}
		if seq%100 == 0 {
			return trim(tx.Bucket(bChanges), s.retain, seq)
		}
		return nil
	})
	if err != nil {
		return store.Change{}, fmt.Errorf("boltstore: apply: %w", err)
	}
	if ch.Seq != 0 {
		kept := ch
		s.last.Store(&kept)
	}
	return ch, nil
}

// trim keeps the newest changes, at most retain of them and about
// MaxLogBytes, and always the current one.
func trim(b *bolt.Bucket, retain, current uint64) error {
	c := b.Cursor()
	var n, size uint64
	var cutoff []byte
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		n++
		size += uint64(len(v))
		if binary.BigEndian.Uint64(k) != current && (n > retain || size > MaxLogBytes) {
			cutoff = append([]byte(nil), k...)
			break
		}
	}
	if cutoff == nil {
		return nil
	}
	for k, _ := c.First(); k != nil && string(k) <= string(cutoff); k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Load implements store.Store.
func (s *Store) Load(ctx context.Context) (store.State, error) {
	var st store.State
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(kSeq); v != nil {
			st.Seq = binary.BigEndian.Uint64(v)
		}
		if err := tx.Bucket(bDecisions).ForEach(func(k, v []byte) error {
			var d store.Decision
			st.Decisions = append(st.Decisions, d)
			return json.Unmarshal(v, &st.Decisions[len(st.Decisions)-1])
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bAllow).ForEach(func(k, v []byte) error {
			var a store.Allow
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			st.Allow = append(st.Allow, a)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bOffenders).ForEach(func(k, v []byte) error {
			var o store.Offender
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			st.Offenders = append(st.Offenders, o)
			return nil
		})
	})
	if err != nil {
		return store.State{}, fmt.Errorf("boltstore: load: %w", err)
	}
	return st, nil
}

// Changes implements store.Store.
func (s *Store) Changes(ctx context.Context, after uint64, limit int) ([]store.Change, error) {
	if last := s.last.Load(); last != nil && last.Seq == after+1 && limit > 0 {
		return []store.Change{*last}, nil
	}
	var out []store.Change
	err := s.db.View(func(tx *bolt.Tx) error {
		var cur uint64
		if v := tx.Bucket(bMeta).Get(kSeq); v != nil {
			cur = binary.BigEndian.Uint64(v)
		}
		if after >= cur {
			return nil
		}
		c := tx.Bucket(bChanges).Cursor()
		k, v := c.Seek(be(after + 1))
		if k == nil || binary.BigEndian.Uint64(k) != after+1 {
			return store.ErrCompacted
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			ch := store.Change{Seq: binary.BigEndian.Uint64(k)}
			if err := decodeMutations(v, &ch.Mutations); err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: changes after %d: %w", after, err)
	}
	return out, nil
}

// compressAbove is the number of mutations from which a change-log entry
// is stored gzipped: a 100,000-ban import is 25 MB of JSON, 3 MB gzipped,
// and encoding it one mutation at a time never holds the whole text.
const compressAbove = 256

// encodeMutations is a change-log value: a JSON array, gzipped when long.
// decJSON holds PutDecision records already encoded, by index (nil: none).
func encodeMutations(muts []store.Mutation, decJSON [][]byte) ([]byte, error) {
	if len(muts) < compressAbove {
		return json.Marshal(muts)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	enc := json.NewEncoder(zw)
	zw.Write([]byte{'['})
	for i := range muts {
		if i > 0 {
			zw.Write([]byte{','})
		}
		if i < len(decJSON) && decJSON[i] != nil {
			d := decJSON[i]
			// What json.Marshal writes for a PutDecision Mutation.
			zw.Write([]byte(`{"op":"put-decision","decision":`))
			zw.Write(d)
			zw.Write([]byte{'}'})
			continue
		}
		if err := enc.Encode(&muts[i]); err != nil {
			return nil, err
		}
	}
	zw.Write([]byte{']'})
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeMutations reads a value encodeMutations wrote (plain JSON from
// older versions too).
func decodeMutations(v []byte, out *[]store.Mutation) error {
	if len(v) < 2 || v[0] != 0x1f || v[1] != 0x8b {
		return json.Unmarshal(v, out)
	}
	zr, err := gzip.NewReader(bytes.NewReader(v))
	if err != nil {
		return err
	}
	return json.NewDecoder(zr).Decode(out)
}
