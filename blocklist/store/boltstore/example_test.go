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

func ExampleStore_CountReport() {
	st, err := boltstore.Open("/var/lib/rampart/blocklistd.db")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	// Durable once it returns: a crash right after still counts these 3.
	total, err := st.CountReport(context.Background(), netip.MustParsePrefix("203.0.113.9/32"), 3, time.Now(), 10*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%d events in the last 10 minutes", total)
}
