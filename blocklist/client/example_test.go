package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
)

// An agent follows the blocklist: a full snapshot first, then deltas, each
// call waiting up to 30 seconds for something new.
func Example() {
	cert, err := tls.LoadX509KeyPair("/etc/rampart/agent.pem", "/etc/rampart/agent-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	caPEM, err := os.ReadFile("/etc/rampart/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := client.New(client.Config{
		URL: "https://blocklistd.internal:8443",
		TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	var have uint64
	for {
		u, err := c.Sync(ctx, have, 30*time.Second)
		if err != nil {
			log.Print(err) // back off and retry; keep enforcing what you have
			time.Sleep(5 * time.Second)
			continue
		}
		if u.Full {
			log.Printf("replace with %d entries", len(u.Entries))
		} else if u.Version != have {
			log.Printf("add %d, remove %d", len(u.Add), len(u.Remove))
		}
		have = u.Version
	}
}

func ExampleClient_Report() {
	var c *client.Client // from client.New with a certificate carrying the reporter role
	err := c.Report(context.Background(), client.Report{
		Addr:   netip.MustParseAddr("203.0.113.7"),
		Reason: "sshd: failed password",
		Count:  5,
		Window: 10 * time.Minute,
	})
	if err != nil {
		log.Print(err)
	}
}
