package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("bastion "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion %s\n\n", usage)
		if s := verbSummaries[name]; s != "" {
			fmt.Fprintf(fs.Output(), "%s\n\n", s)
		}
		fmt.Fprintf(fs.Output(), "flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// verbSummaries are the one-line descriptions --help prints.
var verbSummaries = map[string]string{
	"serve":           "Run the SSH bastion: public key plus TOTP or Duo, jump and recorded sessions, hash-chained audit.",
	"audit verify":    "Check the audit log's hash chain; name the first record that does not follow.",
	"sshfp":           "Print SSHFP DNS records for the host keys (read only: never creates keys).",
	"user add":        "Enrol a user: their public key, and a TOTP secret (QR code, otpauth URI) and/or Duo.",
	"user list":       "List the users with their state, second factor and recovery codes left.",
	"user disable":    "Refuse every login of the user, keeping keys and secrets.",
	"user enable":     "Undo user disable.",
	"user remove":     "Delete the user, their TOTP secret and recovery codes.",
	"user reset-totp": "Give the user a new TOTP secret (QR code, otpauth URI) and new recovery codes.",
}

const defaultConfig = "/etc/rampart/bastion.yaml"

// serveGCPercent is the garbage collector's target for "bastion serve"
// when GOGC is not set. x/crypto/ssh copies every incoming packet into a
// fresh buffer, 32 KiB each during a bulk jump, and the bastion's live
// heap is small: at the default of 100 the collector ran every few
// megabytes and the freed pages were handed back to the kernel and
// faulted in again. A 1 GiB jump cost the bastion 4.1 CPU seconds at 100
// and 2.2 at 400 (BenchmarkJumpThroughput); 500 idle jumps cost 127 KB
// of RSS each instead of 105 (BenchmarkIdleJumpSessions).
const serveGCPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}

func cmdServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", "serve --config FILE [--check] [-v]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml")
	verbose := fs.Bool("v", false, "debug logging")
	check := fs.Bool("check", false, "load and check the configuration and the files it names, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	tuneGC()
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	// A bastion without users only refuses: a missing users_dir or a
	// typo'd path, not something to start on.
	policy, err := bastion.NewPolicy(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	if len(policy.UserNames()) == 0 {
		return fmt.Errorf("%s: no users (neither users: nor %s has any); enrol one with \"bastion user add NAME --key FILE --config %s\"", *cfgPath, cfg.UsersDir, *cfgPath)
	}
	if *check {
		if bl := cfg.Blocklist; bl != nil {
			if _, err := cfg.ClientTLS(bl.CAFile, bl.CertFile, bl.KeyFile); err != nil {
				return fmt.Errorf("%s: blocklist: %w", *cfgPath, err)
			}
		}
		fmt.Printf("%s: ok (listen %s, %d users, %d targets, audit %s)\n", *cfgPath, cfg.Listen, len(policy.UserNames()), len(cfg.Targets), cfg.Audit.File)
		return nil
	}
	reg := metrics.NewRegistry()
	deps := bastion.Deps{Logger: logger, Registry: reg}
	if bl := cfg.Blocklist; bl != nil {
		tlsCfg, err := cfg.ClientTLS(bl.CAFile, bl.CertFile, bl.KeyFile)
		if err != nil {
			return fmt.Errorf("blocklist: %w", err)
		}
		c, err := client.New(client.Config{URL: bl.URL, TLS: tlsCfg})
		if err != nil {
			return fmt.Errorf("blocklist: %w", err)
		}
		deps.Reporter = blocklistReporter{c}
	}
	srv, closeAudit, err := bastion.Setup(ctx, cfg, deps)
	if err != nil {
		return err
	}
	defer closeAudit()
	if rc := cfg.Recording; rc.Dir != "" {
		proxy, err := newRecorder(cfg, srv, logger, reg)
		if err != nil {
			return err
		}
		srv.SetRecorder(proxy)
	}
	if cfg.MetricsListen != "" {
		go func() {
			if err := metrics.Serve(ctx, logger, cfg.MetricsListen, reg); err != nil {
				logger.Error("bastion: metrics", "err", err)
			}
		}()
	}
	// Users, groups and targets reload on SIGHUP and whenever the config
	// file or users_dir changes ("bastion user add|disable|remove" need
	// no restart and no signal).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		tick := time.NewTicker(reloadPoll)
		defer tick.Stop()
		stamp := cfg.Stamp(*cfgPath)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-tick.C:
				if cfg.Stamp(*cfgPath) == stamp {
					continue
				}
			}
			stamp = cfg.Stamp(*cfgPath)
			next, err := bastion.LoadConfig(*cfgPath)
			if err == nil {
				var n int
				if n, err = srv.Reload(next); err == nil {
					logger.Info("bastion: reloaded users, groups and targets", "users", n, "disabled", len(next.DisabledUsers()))
					continue
				}
			}
			logger.Error("bastion: reload failed; keeping the previous policy", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	logger.Info("bastion: listening", "addr", ln.Addr().String())
	return srv.Serve(ctx, ln)
}

// newRecorder wires bastion/recorded's Proxy as the server's recorder.
func newRecorder(cfg *bastion.Config, srv *bastion.Server, logger *slog.Logger, reg prometheus.Registerer) (bastion.RecordFunc, error) {
	rc := cfg.Recording
	if rc.UserCAKey == "" {
		return nil, errors.New("recording: user_ca_key is required (the CA key that signs short-lived certificates for targets)")
	}
	pem, err := os.ReadFile(cfg.Path(rc.UserCAKey))
	if err != nil {
		return nil, fmt.Errorf("recording: user_ca_key: %w", err)
	}
	ca, err := gossh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("recording: user_ca_key %s: %w", rc.UserCAKey, err)
	}
	p, err := recorded.New(recorded.Options{Dir: cfg.Path(rc.Dir), UserCA: ca, CertTTL: time.Duration(rc.CertTTL),
		RecordInput:     rc.RecordInput,
		Retention:       recorded.Retention{MaxBytes: rc.Retention.MaxBytes, MaxAge: time.Duration(rc.Retention.MaxAge)},
		OnRecordFailure: recorded.FailurePolicy(rc.OnFailure),
		Audit:           srv.AuditEvent, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return func(sess glssh.Session, user string, t *bastion.Target) error {
		return p.Serve(sess, user, recorded.Target{Name: t.Name, Addr: t.Addr, User: t.User, HostKeys: t.HostKeys, HostCA: t.HostCA})
	}, nil
}

type blocklistReporter struct{ c *client.Client }

func (r blocklistReporter) Report(ctx context.Context, addr netip.Addr, reason string, count int, window time.Duration) error {
	return r.c.Report(ctx, client.Report{Addr: addr, Reason: reason, Count: count, Window: window})
}

func cmdAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintf(os.Stderr, "usage: bastion audit verify [--file F | --config FILE]\n\n%s\n", verbSummaries["audit verify"])
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: bastion audit verify [--file F | --config FILE]")
	}
	fs := newFlags("audit verify", "audit verify [--file F | --config FILE]")
	file := fs.String("file", "", "audit log (default: audit.file from the config)")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, to find the audit log")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		cfg, err := bastion.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		*file = cfg.Path(cfg.Audit.File)
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		return fmt.Errorf("%s: %w (%d records before it are intact)", *file, err, n)
	}
	fmt.Printf("%s: %d records, chain intact\n", *file, n)
	return nil
}

func cmdSSHFP(ctx context.Context, args []string) error {
	fs := newFlags("sshfp", "sshfp [--config FILE] [--host NAME]")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, to find the host keys")
	host := fs.String("host", "", "DNS name of the bastion (default: the hostname)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := bastion.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *host == "" {
		*host, _ = os.Hostname()
	}
	// Read only: LoadHostKeys would generate missing keys, and records
	// for keys no running bastion presents would be wrong in DNS.
	dir := cfg.Path(cfg.HostKeyDir)
	var keys []gossh.PublicKey
	for _, name := range []string{bastion.HostKeyEd25519, bastion.HostKeyECDSA} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		s, err := gossh.ParsePrivateKey(data)
		if err != nil {
			return fmt.Errorf("host key %s: %w", filepath.Join(dir, name), err)
		}
		keys = append(keys, s.PublicKey())
	}
	if len(keys) == 0 {
		return fmt.Errorf("no host keys in %s: bastion serve generates them at its first start", dir)
	}
	out, err := bastion.SSHFP(*host, keys)
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}
