package server_test

import (
	"context"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

// Embedding blocklistd: a bbolt store, the default policy, mTLS on :8443.
func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := boltstore.Open("/var/lib/rampart/blocklistd.db")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(ctx, st, server.Config{
		Policy: server.Policy{Threshold: 5, Window: 10 * time.Minute, BanTTL: time.Hour},
	}, logger, metrics.NewRegistry())
	if err != nil {
		log.Fatal(err)
	}
	tlsConfig, err := server.TLSConfig("/etc/rampart/blocklistd.pem", "/etc/rampart/blocklistd-key.pem", "/etc/rampart/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Run(ctx)
	log.Fatal(server.Serve(ctx, ln, srv.Handler(), tlsConfig, logger))
}

func ExampleParsePrefix() {
	for _, s := range []string{"192.0.2.7", "2001:db8::/48", "::ffff:10.0.0.0/104", "10.1.2.3/8"} {
		p, err := server.ParsePrefix(s)
		log.Println(p, err)
	}
}
