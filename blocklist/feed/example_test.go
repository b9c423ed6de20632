package feed_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/rampart-sec/rampart/blocklist/feed"
	"github.com/rampart-sec/rampart/pkg/listfile"
)

// Fetch Spamhaus DROP twice: the second request is conditional and, when
// the list has not changed, transfers nothing.
func ExampleFetcher() {
	f := &feed.Fetcher{
		Feed: feed.Feed{
			Name:  "spamhaus-drop",
			URL:   "https://www.spamhaus.org/drop/drop.txt",
			Parse: listfile.Options{MaxBits4: 8},
		},
		Client: &http.Client{Timeout: time.Minute},
	}
	for range 2 {
		res, err := f.Fetch(context.Background())
		if err != nil {
			log.Print(err) // keep the previous content
			continue
		}
		if res.NotModified {
			log.Print("unchanged")
			continue
		}
		log.Printf("%d prefixes, %d rejected lines", len(res.Prefixes), len(res.Rejected))
	}
}
