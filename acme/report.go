package acme

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gather builds the textfile metrics: expiry read from disk, success and
// failures from the state.
func (r *Renewer) gather(st *State) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	expiry := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_acme_certificate_expiry_timestamp_seconds",
		Help: "NotAfter of the certificate on disk, as a Unix time.",
	}, []string{"name"})
	success := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_acme_last_success_timestamp_seconds",
		Help: "When the certificate was last obtained, as a Unix time (0: never by this host).",
	}, []string{"name"})
	failures := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_acme_consecutive_failures",
		Help: "Failed attempts since the last success.",
	}, []string{"name"})
	hookPending := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_acme_deploy_hook_pending",
		Help: "1 while a deploy hook of the certificate on disk has failed and is retried by the next run (the service may still use the old certificate).",
	}, []string{"name"})
	lastRun := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rampart_acme_last_run_timestamp_seconds",
		Help: "When acme-renew run last finished, as a Unix time.",
	})
	reg.MustRegister(expiry, success, failures, hookPending, lastRun)
	for _, c := range r.cfg.Certificates {
		if leaf, err := leafOf(&c.Output); err == nil && leaf != nil {
			expiry.WithLabelValues(c.Name).Set(float64(leaf.NotAfter.Unix()))
		}
		cs := st.cert(c.Name)
		var ts float64
		if !cs.LastSuccess.IsZero() {
			ts = float64(cs.LastSuccess.Unix())
		}
		success.WithLabelValues(c.Name).Set(ts)
		failures.WithLabelValues(c.Name).Set(float64(cs.Failures))
		pending := 0.0
		if cs.HookPending {
			pending = 1
		}
		hookPending.WithLabelValues(c.Name).Set(pending)
	}
	lastRun.Set(float64(r.opts.Now().Unix()))
	return reg
}

// Nagios exit statuses returned by [Check].
const (
	StatusOK       = 0
	StatusWarning  = 1
	StatusCritical = 2
)

// CheckThresholds are the remaining-lifetime limits of [Check]. Each is
// capped at a fraction of the certificate's lifetime (a quarter for
// Warning, an eighth for Critical) so that short-lived certificates are
// judged on their own scale.
type CheckThresholds struct {
	Warning, Critical time.Duration
}

// Check reads every configured certificate from disk, writes one line per
// certificate and returns the Nagios status: critical for a missing,
// unreadable or nearly expired certificate, warning when renewal looks
// overdue, the names differ from the config, or renewal is backing off
// after failures. The state file is read only for that backoff (and an
// unreadable one is ignored): what is on disk decides.
func Check(w io.Writer, cfg *Config, th CheckThresholds, now time.Time) int {
	worst := StatusOK
	var lines []string
	counts := [3]int{}
	st, err := LoadState(cfg.StatePath())
	if err != nil {
		st, _ = LoadState("")
	}
	for _, c := range cfg.Certificates {
		status, line := checkOne(c, th, now)
		if cs := st.Certificates[c.Name]; cs != nil && backingOff(now, c, cs) {
			status = max(status, StatusWarning)
			if rest, ok := strings.CutPrefix(line, "OK "); ok {
				line = "WARNING " + rest
			}
			line += fmt.Sprintf("; renewal backing off until %s after %d failure(s): %s", cs.NextAttempt.UTC().Format(time.RFC3339), cs.Failures, cs.LastError)
		}
		counts[status]++
		worst = max(worst, status)
		lines = append(lines, line)
	}
	label := [...]string{"OK", "WARNING", "CRITICAL"}[worst]
	fmt.Fprintf(w, "ACME %s - %d ok, %d warning, %d critical\n", label, counts[0], counts[1], counts[2])
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return worst
}

func checkOne(c *Certificate, th CheckThresholds, now time.Time) (int, string) {
	certs, err := readCurrent(&c.Output)
	switch {
	case err != nil:
		return StatusCritical, fmt.Sprintf("CRITICAL %s: %v", c.Name, err)
	case certs == nil:
		return StatusCritical, fmt.Sprintf("CRITICAL %s: no certificate at %s", c.Name, c.Output.CurrentDir())
	}
	leaf := certs[0]
	left := leaf.NotAfter.Sub(now)
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	warn, crit := min(th.Warning, life/4), min(th.Critical, life/8)
	desc := fmt.Sprintf("%s: %.1f days left (expires %s), issuer %q, names %s",
		c.Name, left.Hours()/24, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.Issuer.CommonName, strings.Join(leaf.DNSNames, ","))
	status := StatusOK
	switch {
	case left <= crit:
		status = StatusCritical
	case mismatch(c, leaf) != "":
		// Still valid for the old names; the next run should fix it.
		status, desc = StatusWarning, desc+"; "+mismatch(c, leaf)
	case left <= warn:
		status = StatusWarning
	}
	return status, [...]string{"OK", "WARNING", "CRITICAL"}[status] + " " + desc
}

// List writes every certificate with its expiry and when it is next due,
// from disk and state alone: it makes no network request.
func List(w io.Writer, cfg *Config, now time.Time) error {
	st, err := LoadState(cfg.StatePath())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDOMAINS\tEXPIRES\tNEXT\tSTATUS")
	for _, c := range cfg.Certificates {
		cs := st.cert(c.Name)
		leaf, err := leafOf(&c.Output)
		expires := "-"
		if err != nil {
			expires = "unreadable"
		} else if leaf != nil {
			expires = leaf.NotAfter.UTC().Format(time.RFC3339)
		}
		dec := decide(now, c, leaf, cs)
		next := "now"
		if !dec.Next.IsZero() {
			next = dec.Next.UTC().Format(time.RFC3339)
		}
		status := dec.Reason
		if cs.Failures > 0 {
			status += fmt.Sprintf(" (last error: %s)", cs.LastError)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, strings.Join(c.Domains, ","), expires, next, status)
	}
	return tw.Flush()
}
