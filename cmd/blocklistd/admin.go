package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
)

type adminFlags struct {
	config, url, cert, key, ca, certDir string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.config, "config", os.Getenv("BLOCKLISTD_CONFIG"), "blocklistd.yaml whose cli: section says how to reach the daemon")
	fs.StringVar(&a.url, "url", os.Getenv("BLOCKLISTD_URL"), "daemon URL (https://host:port)")
	fs.StringVar(&a.cert, "cert", os.Getenv("BLOCKLISTD_CERT"), "admin client certificate (PEM)")
	fs.StringVar(&a.key, "key", os.Getenv("BLOCKLISTD_KEY"), "admin client key (PEM)")
	fs.StringVar(&a.ca, "ca", os.Getenv("BLOCKLISTD_CA"), "CA bundle that signed the daemon's certificate")
	fs.StringVar(&a.certDir, "cert-dir", os.Getenv("BLOCKLISTD_CERT_DIR"), "admin certificate directory as `pki bootstrap` writes it (cert.pem, key.pem, root.pem), instead of --cert, --key and --ca")
}

func (a *adminFlags) client() (*client.Client, error) {
	if a.config != "" {
		fc, err := server.LoadFile(a.config)
		if err != nil {
			return nil, err
		}
		pick := func(flagVal, fileVal string) string {
			if flagVal != "" {
				return flagVal
			}
			return fileVal
		}
		a.url = pick(a.url, fc.CLI.URL)
		if a.url == "" {
			a.url = "https://" + fc.Listen
		}
		a.certDir = pick(a.certDir, fc.CLI.CertDir)
		a.cert = pick(a.cert, fc.CLI.Cert)
		a.key = pick(a.key, fc.CLI.Key)
		a.ca = pick(a.ca, pick(fc.CLI.CA, fc.TLS.ClientCA))
	}
	return client.AdminConn{URL: a.url, CertDir: a.certDir, Cert: a.cert, Key: a.key, CA: a.ca}.Dial()
}

func cmdBan(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ban", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd ban PREFIX [--ttl D] [--reason TEXT] [--force] [--config FILE]",
		"Ban an address or prefix on every host.")
	var af adminFlags
	af.register(fs)
	ttl := fs.String("ttl", "", "how long the ban lasts (90m, 24h, 7d); default: the server's manual_ttl")
	reason := fs.String("reason", "", "why, for the list and the logs")
	force := fs.Bool("force", false, "ban even an address of the fleet's own hosts (learned from agent certificates)")
	pos, err := cli.ParseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	p, err := server.ParsePrefix(pos[0])
	if err != nil {
		return err
	}
	var d time.Duration
	if *ttl != "" {
		if d, err = config.ParseDuration(*ttl); err != nil {
			return fmt.Errorf("--ttl: %w", err)
		}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var opts []client.BanOption
	if *force {
		opts = append(opts, client.Force())
	}
	if err := c.Ban(ctx, p, d, *reason, opts...); err != nil {
		return err
	}
	fmt.Printf("banned %s\n", p)
	return nil
}

func cmdUnban(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("unban", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd unban PREFIX [--config FILE]",
		"Remove a manual ban.")
	var af adminFlags
	af.register(fs)
	pos, err := cli.ParseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	p, err := server.ParsePrefix(pos[0])
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if err := c.Unban(ctx, p); err != nil {
		return err
	}
	fmt.Printf("unbanned %s\n", p)
	return nil
}

func cmdAllow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("allow", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd allow PREFIX [--config FILE]",
		"Never block this address or prefix, whatever reports and feeds say.")
	var af adminFlags
	af.register(fs)
	reason := fs.String("reason", "", "why, for the list and the logs")
	remove := fs.Bool("remove", false, "take PREFIX off the allowlist instead")
	pos, err := cli.ParseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	p, err := server.ParsePrefix(pos[0])
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if *remove {
		if err := c.Unallow(ctx, p); err != nil {
			return err
		}
		fmt.Printf("removed %s from the allowlist\n", p)
		return nil
	}
	if err := c.Allow(ctx, p, *reason); err != nil {
		return err
	}
	fmt.Printf("allowed %s\n", p)
	return nil
}
