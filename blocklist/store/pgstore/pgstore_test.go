package pgstore_test

import (
	"context"
	"errors"
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
		return open(t, ctx, dsn)
	})
}

// open opens a store on dsn that is closed when t ends.
func open(t *testing.T, ctx context.Context, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNotifyReachesOtherReplica(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	a := open(t, ctx, pg.DSN)
	b := open(t, ctx, pg.DSN)
	// Drain the signal each store sends itself when it starts listening.
	drain := func(c <-chan struct{}) {
		select {
		case <-c:
		case <-time.After(100 * time.Millisecond):
		}
	}
	drain(b.Notify())
	_, err := a.Apply(ctx, []store.Mutation{{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Created: time.Now()}}})
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

// A change too large for the log reaches other replicas as "reload":
// Changes stops before it, then answers ErrCompacted, and Load holds it.
// The writer follows it from memory.
func TestHugeChangeMakesOthersReload(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	a := open(t, ctx, pg.DSN)
	b := open(t, ctx, pg.DSN)
	small := []store.Mutation{{Op: store.PutAllow, Allow: &store.Allow{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Created: time.Now()}}}
	if _, err := a.Apply(ctx, small); err != nil {
		t.Fatal(err)
	}
	var big []store.Mutation
	for i := range 25_000 {
		big = append(big, store.Mutation{Op: store.PutDecision, Decision: &store.Decision{
			Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Action: store.ActionBan, Source: "manual", Created: time.Now()}})
	}
	ch, err := a.Apply(ctx, big)
	if err != nil || ch.Seq != 2 {
		t.Fatalf("apply: %+v, %v", ch.Seq, err)
	}
	if chs, err := a.Changes(ctx, 1, 10); err != nil || len(chs) != 1 || len(chs[0].Mutations) != 25_000 {
		t.Fatalf("the writer's own change: %d, %v", len(chs), err)
	}
	chs, err := b.Changes(ctx, 0, 10)
	if err != nil || len(chs) != 1 || chs[0].Seq != 1 {
		t.Fatalf("b before the huge change: %+v, %v", chs, err)
	}
	if _, err := b.Changes(ctx, 1, 10); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("b at the huge change: %v, want ErrCompacted", err)
	}
	st, err := b.Load(ctx)
	if err != nil || st.Seq != 2 || len(st.Decisions) != 25_000 {
		t.Fatalf("b's reload: seq %d, %d decisions, %v", st.Seq, len(st.Decisions), err)
	}
}
