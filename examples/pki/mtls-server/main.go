// Command mtls-server is an example of a Rampart daemon's TLS side: it
// serves HTTPS with the certificate of a bootstrapped directory, keeps it
// renewed in the background, requires client certificates from the same CA
// and authorizes on the Rampart role in them.
//
//	pki bootstrap --ca-url https://ca.internal:9443 --fingerprint SHA256 --token TOKEN --out /etc/rampart/tls/demo
//	go run ./examples/pki/mtls-server --dir /etc/rampart/tls/demo --addr :8443 --role reporter
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/rampart-sec/rampart/pki/client"
)

func main() {
	dir := flag.String("dir", "/etc/rampart/tls/demo", "certificate directory written by pki bootstrap")
	addr := flag.String("addr", "127.0.0.1:8443", "listen address")
	role := flag.String("role", "reporter", "role a client certificate must carry")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	src, err := client.NewSource(*dir)
	if err != nil {
		log.Fatal(err)
	}
	src.RunRenewer(ctx, &client.Renewer{Logger: logger})

	srv := &http.Server{
		Addr:              *addr,
		TLSConfig:         src.ServerConfig(true),
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer := r.TLS.PeerCertificates[0]
			if !slices.Contains(client.Roles(peer), *role) {
				http.Error(w, "forbidden: missing role "+*role, http.StatusForbidden)
				return
			}
			fmt.Fprintf(w, "hello %s, roles %v\n", peer.Subject.CommonName, client.Roles(peer))
		}),
	}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	logger.Info("serving", "addr", *addr)
	if err := srv.ListenAndServeTLS("", ""); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
