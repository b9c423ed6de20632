package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	bolt "go.etcd.io/bbolt"
)

var bFleet = []byte("fleet")

// PutFleetHosts implements store.FleetStore.
func (s *Store) PutFleetHosts(ctx context.Context, hosts []store.FleetHost) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bFleet)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			k := []byte(h.Addr.String())
			if v := b.Get(k); v != nil {
				var old store.FleetHost
				if json.Unmarshal(v, &old) == nil && old.LastSeen.After(h.LastSeen) {
					continue
				}
			}
			if err := put(b, string(k), h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("boltstore: put fleet hosts: %w", err)
	}
	return nil
}

// FleetHosts implements store.FleetStore; hosts not seen since are deleted.
func (s *Store) FleetHosts(ctx context.Context, since time.Time) ([]store.FleetHost, error) {
	var out []store.FleetHost
	var stale [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bFleet)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var h store.FleetHost
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("fleet host %q: %w", k, err)
			}
			if h.LastSeen.Before(since) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			out = append(out, h)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: fleet hosts: %w", err)
	}
	if len(stale) > 0 {
		_ = s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range stale {
				_ = tx.Bucket(bFleet).Delete(k)
			}
			return nil
		})
	}
	return out, nil
}
