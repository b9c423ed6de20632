package ca_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rampart-sec/rampart/pki/ca"
	"github.com/rampart-sec/rampart/pki/client"
)

// Create a CA and mint a one-time token for a host, as pki init and
// pki token do.
func ExampleInit() {
	dir, _ := os.MkdirTemp("", "ca")
	defer os.RemoveAll(dir)
	res, err := ca.Init(dir, ca.InitOptions{Name: "Example", Listen: "127.0.0.1:9443"})
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := ca.LoadConfig(filepath.Join(dir, ca.ConfigFile))
	if err != nil {
		log.Fatal(err)
	}
	prov, err := cfg.LoadProvisioner(res.Fingerprint)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := prov.Token(cfg.URL, client.TokenRequest{Subject: "web1", SANs: []string{"web1.internal"}, Roles: []string{"agent"}})
	if err != nil {
		log.Fatal(err)
	}
	info, _ := client.ParseToken(tok)
	fmt.Println(cfg.URL, info.Subject, info.SANs)
	// Output: https://localhost:9443 web1 [web1.internal urn:rampart:role:agent]
}
