package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/pki/client"
)

// An mTLS server refuses client certificates the CA revoked within a
// refresh period of `pki revoke`, and every client once it has had no
// fresh CRL for an hour (fail closed).
func ExampleSource_CheckRevocation() {
	ctx := context.Background()
	src, err := client.NewSource("/etc/rampart/tls/blocklistd")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := src.CheckRevocation(ctx, client.RevocationOptions{
		Refresh:    15 * time.Second, // conditional GET of https://<ca.url>/1.0/crl
		MaxAge:     time.Hour,
		CacheFile:  "/var/lib/rampart/blocklistd/crl.der",
		Logger:     slog.Default(),
		Registerer: prometheus.DefaultRegisterer, // rampart_pki_crl_age_seconds, ...
	}); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":8443", TLSConfig: src.ServerConfig(true)}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// A TLS configuration built from files rather than a Source checks the
// CRL through VerifyConnection.
func ExampleRevocationConfig_Start() {
	ctx := context.Background()
	tc := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert /* , ClientCAs, Certificates ... */}
	rc := client.RevocationConfig{URL: "https://ca.internal:9443/1.0/crl"}
	if _, err := rc.Start(ctx, tc, "/etc/rampart/tls/svc/cert.pem", "/etc/rampart/tls/svc/root.pem", slog.Default(), nil); err != nil {
		log.Fatal(err)
	}
}

// A host keeps its SSH host certificate renewed, as `step ssh renew`
// would, and reloads sshd after each renewal.
func ExampleSSHHostRenewer() {
	c, err := client.NewFromDir("https://ca.internal:9443", "/etc/rampart/tls/host")
	if err != nil {
		log.Fatal(err)
	}
	r := &client.SSHHostRenewer{KeyFile: "/etc/ssh/ssh_host_ed25519_key", Client: c, Hook: "systemctl reload ssh", Logger: slog.Default()}
	log.Fatal(r.Run(context.Background()))
}

// pki list's filters: valid certificates of db hosts expiring within 2h.
func ExampleInventoryFilter() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := client.InventoryFilter{Expiring: 2 * time.Hour, Name: "*.db.internal"}
	for _, c := range []client.Issued{
		{Serial: "1", Subject: "pg1.db.internal", NotAfter: now.Add(time.Hour)},
		{Serial: "2", Subject: "pg2.db.internal", NotAfter: now.Add(20 * time.Hour)},
		{Serial: "3", Subject: "web1.internal", NotAfter: now.Add(time.Hour)},
		{Serial: "4", Subject: "pg3.db.internal", NotAfter: now.Add(time.Hour), Revoked: true},
	} {
		fmt.Println(c.Serial, f.Match(c, now), c.State(now))
	}
	// Output:
	// 1 true valid
	// 2 false valid
	// 3 false valid
	// 4 false revoked
}
