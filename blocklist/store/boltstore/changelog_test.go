package boltstore

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	bolt "go.etcd.io/bbolt"
)

// Long changes are stored gzipped; a reader that did not write them (here:
// after reopening the file) decodes them to the same mutations.
func TestLongChangeRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var muts []store.Mutation
	for i := range 3 * compressAbove {
		muts = append(muts, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
			Prefix: netip.MustParsePrefix(fmt.Sprintf("10.0.%d.%d/32", i/256, i%256)), Action: store.ActionBan,
			Source: "manual", Reason: fmt.Sprintf("reason %d, with \"quotes\"", i), Created: at, Expires: at.Add(time.Duration(i) * time.Second)}})
	}
	muts = append(muts, store.Mutation{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Created: at}})
	want, err := s.Apply(ctx, muts)
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(ctx, muts[:1])
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chs, err := s.Changes(ctx, 0, 10)
	if err != nil || len(chs) != 2 {
		t.Fatalf("changes: %d, %v", len(chs), err)
	}
	if !reflect.DeepEqual(chs[0], want) {
		t.Fatalf("decoded change differs from the written one")
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bChanges).Get(be(1))
		if v[0] != 0x1f {
			return fmt.Errorf("a %d-mutation change is not stored gzipped", len(muts))
		}
		if v := tx.Bucket(bChanges).Get(be(2)); v[0] != '[' {
			return fmt.Errorf("a short change is not plain JSON")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
