package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/detect"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/apply"
	"github.com/rampart-sec/rampart/pkg/metrics"
)

// Daemon is what `blocklist-agent run` runs: the agent following
// blocklistd, the configured detectors reporting to it, and the metrics
// endpoint, all from one Config.
type Daemon struct {
	Config Config
	Logger *slog.Logger
	// Registry defaults to a new registry with the Go and process
	// collectors.
	Registry *prometheus.Registry
	// Backend, when set, replaces the one Config names (tests).
	Backend firewall.Backend
}

// Run starts everything and returns when ctx ends, or at once when the
// agent cannot start. A detector that fails is logged and stops alone:
// enforcement goes on.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.Config
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := d.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	tlsc, err := cfg.Server.TLSConfig()
	if err != nil {
		return err
	}
	if _, err := cfg.Server.CRL.Start(ctx, tlsc, cfg.Server.Cert, cfg.Server.CA, log, reg); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	cl, err := client.New(client.Config{URL: cfg.Server.URL, TLS: tlsc})
	if err != nil {
		return err
	}
	allow, err := cfg.AllowPrefixes()
	if err != nil {
		return err
	}
	// An agent must never cut itself off from the server that could
	// lift a bad decision.
	for _, a := range serverAddrs(ctx, cfg.Server.URL, log) {
		allow = append(allow, netip.PrefixFrom(a, a.BitLen()))
	}
	policy := firewall.Policy{Allow: allow, AllowBroad: cfg.Firewall.AllowBroad}
	backend := d.Backend
	if backend == nil {
		backend, err = apply.OpenBackend(cfg.Firewall.Backend, apply.BackendOptions{
			Table: cfg.Firewall.Table, NetNS: cfg.Firewall.NetNS, Reject: cfg.Firewall.Reject, Forward: cfg.Firewall.Forward,
			Pfctl: cfg.Firewall.Pfctl, KillStates: cfg.Firewall.KillStates, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
	}
	a, err := New(Options{
		Backend:     backend,
		Server:      cl,
		ServerName:  cfg.Server.URL,
		BackendName: cfg.Firewall.Backend,
		Table:       cfg.Firewall.Table,
		Policy:      policy,
		StateDir:    cfg.StateDir,
		Wait:        time.Duration(cfg.Server.Wait),
		Backoff:     Backoff{Min: time.Duration(cfg.Server.BackoffMin), Max: time.Duration(cfg.Server.BackoffMax)},
		Logger:      log,
		Registry:    reg,

		HostAddrsInterval: time.Duration(cfg.Firewall.HostAddrsInterval),
	})
	if err != nil {
		return err
	}

	var detectors []*detect.Detector
	if len(cfg.Detectors) > 0 {
		ignore, err := policy.Allowlist()
		if err != nil {
			return err
		}
		for i, dc := range cfg.Detectors {
			det, err := dc.Build(ignore, log.With("detector", dc.Name))
			if err != nil {
				return fmt.Errorf("detectors[%d]: %w", i, err)
			}
			detectors = append(detectors, det)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		go func() {
			if err := metrics.ServeListener(ctx, log, ln, reg); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		}()
	}
	done := make(chan struct{})
	if len(detectors) > 0 {
		runner := &detect.Runner{Reporter: cl, Logger: log, Registry: reg}
		go func() {
			defer close(done)
			if err := runner.Run(ctx, detectors); err != nil {
				log.Error("detectors stopped; enforcement goes on", "err", err)
			}
		}()
	} else {
		close(done)
	}
	log.Info("blocklist agent starting", "server", cfg.Server.URL, "backend", cfg.Firewall.Backend,
		"state_dir", cfg.StateDir, "detectors", len(detectors))
	err = a.Run(ctx)
	cancel()
	<-done
	return err
}

// serverAddrs resolves blocklistd's host for the allowlist; a name that
// does not resolve now is logged, not fatal.
func serverAddrs(ctx context.Context, rawURL string, log *slog.Logger) []netip.Addr {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap().WithZone("")}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		log.Warn("cannot resolve blocklistd's address to keep it off the blocklist", "host", host, "err", err)
		return nil
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	return addrs
}
