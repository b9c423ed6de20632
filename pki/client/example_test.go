package client_test

import (
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/pki/client"
)

// A new host joins with the token an operator minted on the CA
// (pki token web1 --san web1.internal).
func ExampleBootstrap() {
	ctx := context.Background()
	token := os.Getenv("PKI_TOKEN")
	b, err := client.Bootstrap(ctx, "https://ca.internal:9443",
		"94b832a5b175397cb8b3df578ad1301d4ab17a4c36e94572d13359c1c90147a8",
		token, "/etc/rampart/tls", client.BootstrapOptions{Files: client.FileOptions{Group: "rampart", KeyMode: 0o640}})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serial %s valid until %s", b.Leaf().SerialNumber, b.Leaf().NotAfter)
}

// A daemon serves mTLS with the certificate of a bootstrapped directory and
// keeps it renewed in the background; handshakes pick up each renewal.
func ExampleSource_ServerConfig() {
	src, err := client.NewSource("/etc/rampart/tls")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	src.RunRenewer(ctx, &client.Renewer{Logger: slog.Default()})
	srv := &http.Server{Addr: ":8443", TLSConfig: src.ServerConfig(true),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			roles := client.Roles(r.TLS.PeerCertificates[0]) // e.g. [agent reporter]
			_ = roles
		})}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// A client presents its certificate and trusts only the pinned root.
func ExampleSource_ClientConfig() {
	src, err := client.NewSource("/etc/rampart/tls")
	if err != nil {
		log.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: src.ClientConfig()}}
	_, _ = hc.Get("https://blocklistd.internal:8443/")
	_ = tls.VersionTLS13
}

// The bastion obtains a five-minute SSH user certificate for a recorded
// session. It holds the ssh-users provisioner key (encrypted; it can obtain
// SSH user certificates only) and its password.
func ExampleClient_SignSSHUser() {
	ctx := context.Background()
	prov, err := client.LoadProvisioner("ssh-users", "/etc/rampart/bastion/ssh-users.key.jwe", "/etc/rampart/bastion/password.txt", "")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.NewFromDir("https://ca.internal:9443", "/etc/rampart/tls")
	if err != nil {
		log.Fatal(err)
	}
	var sessionKey ssh.PublicKey // the key the bastion generated for this session
	cert, err := c.SignSSHUser(ctx, prov, sessionKey, "alice", 5*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serial %d for %v", cert.Serial, cert.ValidPrincipals)
}

// What pki renew --daemon runs.
func ExampleRenewer_Run() {
	r := &client.Renewer{Dir: "/etc/rampart/tls", Hook: "systemctl reload nginx", Logger: slog.Default(),
		Textfile: "/var/lib/node_exporter/textfile/rampart_pki.prom"}
	_ = r.Run(context.Background())
}
