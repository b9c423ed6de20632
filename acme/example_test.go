package acme_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/rampart-sec/rampart/acme"
)

func ExampleParseConfig() {
	cfg, err := acme.ParseConfig("acme.yaml", []byte(`
accounts:
  le: {email: ops@example.com, directory: staging}
certificates:
  - domains: [www.example.com]
    profile: shortlived
    challenge: {http01: {port: 8402}}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	c := cfg.Certificates[0]
	fmt.Println(c.Name, c.KeyType, c.Profile, cfg.Accounts[c.Account].Directory)
	fmt.Println(c.Output.CurrentDir())
	// Output:
	// www.example.com ec256 shortlived https://acme-staging-v02.api.letsencrypt.org/directory
	// /var/lib/rampart/acme/certs/www.example.com/current
}

func ExampleRenewer_Run() {
	cfg, err := acme.LoadConfig("/etc/rampart/acme.yaml")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	r, err := acme.NewRenewer(cfg, acme.Options{
		Logger: slog.Default(),
		// cmd/acme-renew passes lego's dns.NewDNSChallengeProviderByName.
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sum.Write(os.Stdout)
	if sum.Failed() > 0 {
		os.Exit(1)
	}
}
