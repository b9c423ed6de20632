package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go4.org/netipx"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/pkg/config"
)

// Reporter sends an offender to blocklistd; *client.Client is one.
type Reporter interface {
	Report(ctx context.Context, r client.Report) error
}

var _ Reporter = (*client.Client)(nil)

// Detector watches one log.
type Detector struct {
	// Name labels logs, metrics and (by default) the report's reason.
	Name    string
	Source  Source
	Matcher Matcher
	// Count matches within Window from one address make a report.
	Count  int
	Window time.Duration
	// Reason is sent with each report; "" means "<Name>: N matches in W".
	Reason string
	// Ignore holds addresses never reported (the agent's allowlist).
	Ignore *netipx.IPSet
	// MaxTracked bounds the addresses counted at once (default 65536).
	MaxTracked int
}

// Config is one detector in the agent's YAML configuration.
type Config struct {
	Name string `yaml:"name"`
	// Type is sshd, json, nginx, haproxy or regex.
	Type string `yaml:"type"`
	// File is the log to tail; for sshd, journal: true follows journald
	// instead, and command runs any program whose output is the log.
	File      string   `yaml:"file"`
	Journal   bool     `yaml:"journal"`
	Command   []string `yaml:"command"`
	FromStart bool     `yaml:"from_start"`
	// Pattern overrides the nginx and haproxy presets and is required
	// for regex: a regular expression with a (?P<addr>...) group.
	Pattern string `yaml:"pattern"`
	// Match and AddrField configure json: the fields a failure record
	// has, and the field holding the client address.
	Match     map[string]string `yaml:"match"`
	AddrField string            `yaml:"addr_field"`
	// Threshold matches within Window make a report (defaults 5 in 10m).
	Threshold int             `yaml:"threshold"`
	Window    config.Duration `yaml:"window"`
	Reason    string          `yaml:"reason"`
	// Poll is how often a file is checked (default 250ms).
	Poll config.Duration `yaml:"poll"`
}

// Default threshold, fail2ban's sshd jail's.
const (
	DefaultThreshold = 5
	DefaultWindow    = 10 * time.Minute
)

// Build turns c into a Detector; ignore may be nil.
func (c Config) Build(ignore *netipx.IPSet, logger *slog.Logger) (*Detector, error) {
	d := &Detector{Name: c.Name, Count: c.Threshold, Window: time.Duration(c.Window), Reason: c.Reason, Ignore: ignore}
	if d.Name == "" {
		d.Name = c.Type
	}
	where := fmt.Sprintf("detector %q", d.Name)
	if d.Count == 0 {
		d.Count = DefaultThreshold
	}
	if d.Window == 0 {
		d.Window = DefaultWindow
	}
	if d.Count < 1 || d.Window < 0 {
		return nil, fmt.Errorf("%s: threshold %d in %v: want at least 1 match in a positive window", where, c.Threshold, d.Window)
	}
	if c.Type != "json" && (len(c.Match) > 0 || c.AddrField != "") {
		return nil, fmt.Errorf("%s: match and addr_field are for type json only", where)
	}
	if c.Type != "regex" && c.Type != "nginx" && c.Type != "haproxy" && c.Pattern != "" {
		return nil, fmt.Errorf("%s: pattern is for types regex, nginx and haproxy only", where)
	}
	switch c.Type {
	case "sshd":
		d.Matcher = NewSSHD()
		if c.Journal {
			d.Matcher = Journal{Inner: d.Matcher, Identifiers: []string{"sshd", "sshd-session"}}
		}
	case "json":
		if c.AddrField == "" || len(c.Match) == 0 {
			return nil, fmt.Errorf("%s: type json needs match (the fields of a failure record) and addr_field", where)
		}
		d.Matcher = JSONFields{Fields: c.Match, AddrField: c.AddrField}
	case "nginx", "haproxy", "regex":
		p := c.Pattern
		if p == "" {
			switch c.Type {
			case "nginx":
				p = NginxPattern
			case "haproxy":
				p = HAProxyPattern
			default:
				return nil, fmt.Errorf("%s: type regex needs a pattern", where)
			}
		}
		re, err := NewRegex(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		d.Matcher = re
	default:
		return nil, fmt.Errorf("%s: unknown type %q (want sshd, json, nginx, haproxy or regex)", where, c.Type)
	}
	sources := 0
	for _, set := range []bool{c.File != "", c.Journal, len(c.Command) > 0} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, fmt.Errorf("%s: give exactly one of file, journal (sshd) or command", where)
	}
	switch {
	case c.File != "":
		d.Source = &File{Path: c.File, FromStart: c.FromStart, Poll: time.Duration(c.Poll), Logger: logger}
	case c.Journal:
		if c.Type != "sshd" {
			return nil, fmt.Errorf("%s: journal is for type sshd; use command for other journald sources", where)
		}
		d.Source = &Command{Argv: JournalctlSSHD, Logger: logger}
	default:
		d.Source = &Command{Argv: c.Command, Logger: logger}
	}
	return d, nil
}

// Runner runs detectors and delivers their reports.
type Runner struct {
	Reporter Reporter
	Logger   *slog.Logger
	// Registry receives the detectors' metrics; nil registers none.
	Registry prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
	// Queue bounds the reports waiting for blocklistd (default 1024);
	// beyond it reports are dropped and counted.
	Queue int
	// Retry is the first pause before resending a report that failed
	// (default 1s, doubling, three attempts in all).
	Retry time.Duration
}

type runnerMetrics struct {
	matches *prometheus.CounterVec
	reports *prometheus.CounterVec
}

// Run runs every detector until ctx ends. A detector whose source cannot go
// on (a log that cannot be read for a reason other than not existing yet)
// stops alone and is logged; Run returns those errors when ctx ends.
func (r *Runner) Run(ctx context.Context, ds []*Detector) error {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	m := runnerMetrics{
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_blocklist_detect_matches_total",
			Help: "Log lines that matched a detector, by detector.",
		}, []string{"detector"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_blocklist_detect_reports_total",
			Help: "Offenders reported to blocklistd, by detector and result (sent, failed, rejected, dropped).",
		}, []string{"detector", "result"}),
	}
	if r.Registry != nil {
		for _, c := range []prometheus.Collector{m.matches, m.reports} {
			if err := r.Registry.Register(c); err != nil {
				return fmt.Errorf("detect: metrics: %w", err)
			}
		}
	}
	qn := r.Queue
	if qn <= 0 {
		qn = 1024
	}
	type job struct {
		d   *Detector
		rep client.Report
	}
	queue := make(chan job, qn)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case j := <-queue:
				result := r.deliver(ctx, log, j.rep)
				m.reports.WithLabelValues(j.d.Name, result).Inc()
			}
		}
	}()
	errc := make(chan error, len(ds))
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTracker(d.Count, d.Window, cmp(d.MaxTracked, 65536))
			matches := m.matches.WithLabelValues(d.Name)
			err := d.Source.Lines(ctx, func(line []byte) {
				addr, ok := d.Matcher.Match(line)
				if !ok || (d.Ignore != nil && d.Ignore.Contains(addr)) {
					return
				}
				matches.Inc()
				n, fire := t.hit(addr, now())
				if !fire {
					return
				}
				reason := d.Reason
				if reason == "" {
					reason = fmt.Sprintf("%s: %d matches in %v", d.Name, n, d.Window)
				}
				log.Info("offender detected", "detector", d.Name, "addr", addr, "matches", n, "window", d.Window)
				select {
				case queue <- job{d, client.Report{Addr: addr, Reason: reason, Count: n, Window: d.Window}}:
				default:
					m.reports.WithLabelValues(d.Name, "dropped").Inc()
					log.Warn("report queue full; dropping a report", "detector", d.Name, "addr", addr)
				}
			})
			if err != nil {
				// One unreadable log stops its own detector only.
				err = fmt.Errorf("detector %q: %w", d.Name, err)
				log.Error("detector stopped", "err", err)
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...) // nil when every source ended with ctx
}

func cmp(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// deliver sends one report, retrying transient failures.
func (r *Runner) deliver(ctx context.Context, log *slog.Logger, rep client.Report) string {
	pause := r.Retry
	if pause <= 0 {
		pause = time.Second
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = r.Reporter.Report(ctx, rep); err == nil {
			return "sent"
		}
		if errors.Is(err, client.ErrRejected) || errors.Is(err, client.ErrForbidden) {
			log.Error("blocklistd refused a report", "addr", rep.Addr, "err", err)
			return "rejected"
		}
		select {
		case <-ctx.Done():
			return "failed"
		case <-time.After(pause):
		}
		pause *= 2
	}
	log.Warn("cannot report an offender to blocklistd", "addr", rep.Addr, "err", err)
	return "failed"
}
