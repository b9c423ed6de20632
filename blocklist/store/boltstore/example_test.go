package boltstore_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
)

func ExampleOpen() {
	st, err := boltstore.Open("/var/lib/rampart/blocklistd.db")
	if err != nil {
		log.Fatal(err) // another process holds the file, or no permission
	}
	defer st.Close()
	ch, err := st.Apply(context.Background(), []store.Mutation{{Op: store.PutDecision, Decision: &store.Decision{
		Prefix: netip.MustParsePrefix("192.0.2.0/24"), Action: store.ActionBan, Source: "manual", Created: time.Now(),
	}}})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("recorded as change %d", ch.Seq)
}
