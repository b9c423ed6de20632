package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/pgstore"
	"github.com/rampart-sec/rampart/blocklist/store/storetest"
	"github.com/rampart-sec/rampart/test/testenv"
)

func TestSuite(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	storetest.Run(t, func(t *testing.T) store.Store {
		// One database per subtest keeps them independent.
		name := fmt.Sprintf("t%d", time.Now().UnixNano())
		admin, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		admin.Close(ctx)
		dsn := pg.DSN[:len(pg.DSN)-len("/postgres?sslmode=disable")] + "/" + name + "?sslmode=disable"
		s, err := pgstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestNotifyReachesOtherReplica(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	a, err := pgstore.Open(ctx, pg.DSN, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(ctx, pg.DSN, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Drain the signal each store sends itself when it starts listening.
	drain := func(c <-chan struct{}) {
		select {
		case <-c:
		case <-time.After(100 * time.Millisecond):
		}
	}
	drain(b.Notify())
	_, err = a.Apply(ctx, []store.Mutation{{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Created: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Notify():
	case <-time.After(30 * time.Second):
		t.Fatal("replica b was not notified of a's change")
	}
	chs, err := b.Changes(ctx, 0, 10)
	if err != nil || len(chs) != 1 {
		t.Fatalf("b sees %+v, %v", chs, err)
	}
}
