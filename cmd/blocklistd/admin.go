package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/internal/cli"
	"github.com/rampart-sec/rampart/pkg/config"
	pkiclient "github.com/rampart-sec/rampart/pki/client"
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
	if a.certDir != "" && a.url != "" {
		// The same loader as the agent's and the daemon's cert_dir.
		src, err := pkiclient.NewSource(a.certDir)
		if err != nil {
			return nil, fmt.Errorf("admin certificate: %w", err)
		}
		return client.New(client.Config{URL: a.url, TLS: src.ClientConfig()})
	}
	if a.url == "" || a.cert == "" || a.key == "" || a.ca == "" {
		return nil, errors.New("need --config with a cli: section, or --url with --cert-dir or with --cert, --key and --ca")
	}
	cert, err := tls.LoadX509KeyPair(a.cert, a.key)
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(a.ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificates", a.ca)
	}
	return client.New(client.Config{URL: a.url, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}})
}

// parseArgs accepts flags before and after the one positional argument.
func parseArgs(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != want {
		return nil, fmt.Errorf("want %d argument(s), got %d (%s)", want, len(pos), strings.Join(pos, " "))
	}
	return pos, nil
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
	pos, err := parseArgs(fs, args, 1)
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
	pos, err := parseArgs(fs, args, 1)
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
	pos, err := parseArgs(fs, args, 1)
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

func cmdList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	cli.Describe(fs, "blocklistd list [--json] [--source S] [--prefix P] [--limit N] [--config FILE]",
		"List the bans and the allowlist.")
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var f client.ListFilter
	fs.StringVar(&f.Source, "source", "", "only decisions of this source: manual, report, feed:NAME, feed: (every feed), allow (the allowlist only)")
	prefix := fs.String("prefix", "", "only entries inside this prefix or covering this address or prefix")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many decisions (and allowlist entries), in address order; 0: all")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if *prefix != "" {
		p, err := server.ParsePrefix(*prefix)
		if err != nil {
			return fmt.Errorf("--prefix: %w", err)
		}
		f.Prefix = p
	}
	if f.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 or more", f.Limit)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	l, err := c.ListFiltered(ctx, f)
	if err != nil {
		return err
	}
	return printList(os.Stdout, l, *asJSON)
}

func printList(w io.Writer, l client.Listing, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	shown := fmt.Sprintf("%d decisions", len(l.Decisions))
	if l.Total > len(l.Decisions) {
		shown = fmt.Sprintf("%d of %d decisions", len(l.Decisions), l.Total)
	}
	fmt.Fprintf(tw, "version %d: %s, %d allowlisted\n", l.Version, shown, len(l.Allow))
	fmt.Fprintln(tw, "PREFIX\tACTION\tSOURCE\tEXPIRES\tREASON")
	for _, d := range l.Decisions {
		exp := "never"
		if !d.Expires.IsZero() {
			exp = d.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Prefix, d.Action, escape(d.Source), exp, escape(d.Reason))
	}
	for _, a := range l.Allow {
		fmt.Fprintf(tw, "%s\tallow\t-\tnever\t%s\n", a.Prefix, escape(a.Reason))
	}
	return tw.Flush()
}

// escape quotes text holding anything but printable characters and
// spaces (control characters, bidi overrides), so a reason recorded by an
// older version or another writer cannot rewrite the operator's terminal.
func escape(s string) string {
	for _, r := range s {
		if r != ' ' && !unicode.IsPrint(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
