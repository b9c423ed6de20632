package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/providers/http/webroot"
	"golang.org/x/sys/unix"

	"github.com/rampart-sec/rampart/pkg/hook"
	"github.com/rampart-sec/rampart/pkg/metrics"
	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// ErrLocked is returned by [Renewer.Run] when another run holds the lock.
var ErrLocked = errors.New("another acme-renew run holds the lock")

// DNSProviderFunc builds one of lego's DNS providers by name. cmd/acme-renew
// passes lego's dns.NewDNSChallengeProviderByName, so that only that binary
// links the providers.
type DNSProviderFunc func(name string) (challenge.Provider, error)

// Options are a Renewer's dependencies; only Logger is required.
type Options struct {
	Logger *slog.Logger
	// DNSProvider builds DNS-01 providers; nil makes dns01 certificates fail.
	DNSProvider DNSProviderFunc
	// WrapTransport, when set, wraps the HTTP transport used to talk to
	// the CA (tests count requests through it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Force renews the named certificates whatever their due-ness.
	Force []string
	// UserAgent is sent to the CA.
	UserAgent string
}

// Action is what a run did with one certificate.
type Action string

// Actions in a [Result].
const (
	Renewed Action = "renewed"
	NotDue  Action = "not due"
	Failed  Action = "FAILED"
)

// Result is one certificate's line of the summary.
type Result struct {
	Name     string
	Action   Action
	Reason   string
	NotAfter time.Time // of the certificate on disk after the run
	Next     time.Time // when it is next looked at (zero: next run)
	Replaced bool      // the order named the previous certificate (ARI "replaces")
	Err      error
}

// Summary is the outcome of a run, in config order.
type Summary struct{ Results []Result }

// Failed counts the certificates that failed.
func (s *Summary) Failed() int {
	n := 0
	for _, r := range s.Results {
		if r.Action == Failed {
			n++
		}
	}
	return n
}

// Write prints the summary, one line per certificate and a total.
func (s *Summary) Write(w io.Writer) {
	counts := map[Action]int{}
	for _, r := range s.Results {
		counts[r.Action]++
		line := fmt.Sprintf("%-30s %-8s %s", r.Name, r.Action, r.Reason)
		if r.Err != nil {
			line += ": " + r.Err.Error()
		}
		if !r.NotAfter.IsZero() {
			line += fmt.Sprintf("; expires %s", r.NotAfter.UTC().Format(time.RFC3339))
		}
		if !r.Next.IsZero() && r.Action != Renewed {
			line += fmt.Sprintf("; next look %s", r.Next.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "acme-renew: %d certificate(s): %d renewed, %d not due, %d failed\n",
		len(s.Results), counts[Renewed], counts[NotDue], counts[Failed])
}

// Renewer renews the certificates of one config.
type Renewer struct {
	cfg      *Config
	opts     Options
	log      *slog.Logger
	accounts map[string]*account
	solvers  *solverServers
	envMu    sync.Mutex // DNS providers read their settings from the environment
	// hookEnv is the environment hooks start from: the process's when the
	// Renewer was made. dns01 providers read their settings from the
	// process environment while they are built, and another certificate's
	// hook may start meanwhile.
	hookEnv  []string
	stepHook func(string)
}

// NewRenewer checks that the config's accounts can be set up (CA bundles
// readable) and returns a Renewer. It makes no network request.
func NewRenewer(cfg *Config, opts Options) (*Renewer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "rampart-acme-renew"
	}
	r := &Renewer{cfg: cfg, opts: opts, log: opts.Logger, accounts: map[string]*account{}, solvers: newSolverServers(opts.Logger)}
	for _, c := range cfg.Certificates {
		if d := c.Challenge.DNS01; d != nil && len(d.Resolvers) > 0 {
			// lego keeps the resolvers in a package variable that the
			// option sets; set it once here, before any goroutine reads it
			// (Config.Validate made every certificate's list the same).
			dns01.NewChallenge(nil, nil, nil, dns01.AddRecursiveNameservers(d.Resolvers))
			break
		}
	}
	r.hookEnv = os.Environ()
	for name, a := range cfg.Accounts {
		acc, err := newAccount(a, cfg.StateDir, opts.WrapTransport)
		if err != nil {
			return nil, err
		}
		r.accounts[name] = acc
	}
	return r, nil
}

// StatePath is the state file of a config.
func (c *Config) StatePath() string { return filepath.Join(c.StateDir, "state.json") }

// LockPath is the lock file that keeps two runs apart.
func (c *Config) LockPath() string { return filepath.Join(c.StateDir, "lock") }

// Lock takes the run lock without waiting; release it with the returned
// function. It fails with [ErrLocked] if another process holds it.
func (c *Config) Lock() (func(), error) {
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	f, err := os.OpenFile(c.LockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", c.LockPath(), ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", c.LockPath(), err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// job is one certificate's work in a run.
type job struct {
	i    int
	cert *Certificate
	leaf *x509.Certificate
	cs   *CertState // private copy; merged back under the state mutex
	dec  Decision
}

// Run renews what is due, under the run lock. Per-certificate failures are
// in the summary; the error is for what stops the whole run (the lock).
func (r *Renewer) Run(ctx context.Context) (*Summary, error) {
	unlock, err := r.cfg.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(r.cfg.StatePath())
	if err != nil {
		// Losing the state costs one ARI request per certificate; refusing
		// to run would cost the certificates.
		r.log.Error("state file unreadable, starting afresh", "err", err)
		st, _ = LoadState("")
	}
	now := r.opts.Now()
	sum := &Summary{Results: make([]Result, len(r.cfg.Certificates))}
	var jobs []*job
	hookErrs := make([]error, len(r.cfg.Certificates))
	for i, c := range r.cfg.Certificates {
		cs := st.cert(c.Name).clone()
		leaf, err := leafOf(&c.Output)
		if err != nil {
			r.log.Warn("certificate on disk unreadable; treating as missing", "cert", c.Name, "err", err)
		}
		dec := decide(now, c, leaf, cs)
		if slices.Contains(r.opts.Force, c.Name) {
			dec = Decision{Due: true, Reason: "forced"}
		}
		res := Result{Name: c.Name, Action: NotDue, Reason: dec.Reason, Next: dec.Next}
		if leaf != nil {
			res.NotAfter = leaf.NotAfter
		}
		sum.Results[i] = res
		if cs.HookPending && !dec.Due {
			// Hooks that failed last time are retried without the CA.
			if err := r.runHooks(ctx, c); err != nil {
				hookErrs[i] = err
			} else {
				cs.HookPending = false
				st.cert(c.Name).HookPending = false
			}
		}
		if dec.Due || dec.CheckARI {
			jobs = append(jobs, &job{i: i, cert: c, leaf: leaf, cs: cs, dec: dec})
		}
	}
	var mu sync.Mutex // guards st, sum and the state file
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if ctx.Err() != nil {
			sum.Results[j.i] = Result{Name: j.cert.Name, Action: Failed, Reason: "interrupted", Err: ctx.Err()}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res := r.process(ctx, j)
			mu.Lock()
			defer mu.Unlock()
			st.Certificates[j.cert.Name] = j.cs
			sum.Results[j.i] = res
			if err := st.Save(r.cfg.StatePath()); err != nil {
				r.log.Error("save state", "err", err)
			}
		})
	}
	wg.Wait()
	for i, err := range hookErrs {
		if err != nil && sum.Results[i].Action != Failed {
			sum.Results[i].Action, sum.Results[i].Reason, sum.Results[i].Err = Failed, "retrying deploy hooks", err
		}
	}
	// Drop state of certificates no longer configured.
	for name := range st.Certificates {
		if !slices.ContainsFunc(r.cfg.Certificates, func(c *Certificate) bool { return c.Name == name }) {
			delete(st.Certificates, name)
		}
	}
	if err := st.Save(r.cfg.StatePath()); err != nil {
		r.log.Error("save state", "err", err)
	}
	if r.cfg.MetricsTextfile != "" {
		if err := metrics.WriteTextfile(r.cfg.MetricsTextfile, r.gather(st)); err != nil {
			r.log.Error("write metrics textfile", "path", r.cfg.MetricsTextfile, "err", err)
		}
	}
	return sum, nil
}

// process checks ARI if needed, then renews if due. It updates j.cs.
func (r *Renewer) process(ctx context.Context, j *job) Result {
	c, now := j.cert, r.opts.Now()
	res := Result{Name: c.Name, Action: NotDue, Reason: j.dec.Reason, Next: j.dec.Next}
	if j.leaf != nil {
		res.NotAfter = j.leaf.NotAfter
	}
	fail := func(reason string, err error) Result {
		j.cs.LastAttempt = now
		j.cs.Failures++
		j.cs.NextAttempt = now.Add(backoff(j.cs.Failures))
		j.cs.LastError = err.Error()
		r.log.Error("certificate failed", "cert", c.Name, "step", reason, "failures", j.cs.Failures, "retry_after", j.cs.NextAttempt, "err", err)
		res.Action, res.Reason, res.Err, res.Next = Failed, reason, err, j.cs.NextAttempt
		return res
	}
	client, err := r.client(c)
	if err != nil {
		return fail("connect to the CA", err)
	}
	if j.dec.CheckARI {
		r.fetchARI(client, c, j.leaf, j.cs, now)
		j.dec = decide(now, c, j.leaf, j.cs)
		res.Reason, res.Next = j.dec.Reason, j.dec.Next
		if !j.dec.Due {
			return res
		}
	}
	if err := ctx.Err(); err != nil {
		return fail("interrupted", err)
	}
	req := certificate.ObtainRequest{Domains: c.Domains, Bundle: false, Profile: c.Profile}
	if id := r.replaces(c, j.leaf, j.cs); id != "" {
		req.ReplacesCertID = id
	}
	r.log.Info("obtaining certificate", "cert", c.Name, "domains", c.Domains, "reason", j.dec.Reason, "replaces", req.ReplacesCertID)
	cr, err := client.Certificate.Obtain(req)
	var pd *legoacme.ProblemDetails
	if err != nil && req.ReplacesCertID != "" && errors.As(err, &pd) && (pd.Type == legoacme.AlreadyReplacedErr || pd.HTTPStatus == http.StatusConflict) {
		// An earlier run got a replacement but died before writing it.
		r.log.Warn("the CA says the certificate was already replaced; ordering without replaces", "cert", c.Name)
		req.ReplacesCertID = ""
		cr, err = client.Certificate.Obtain(req)
	}
	if err != nil {
		return fail("obtain", err)
	}
	leafCerts, err := pemcert.Parse(cr.Certificate)
	if err != nil {
		return fail("parse the issued certificate", err)
	}
	s := &store{out: c.Output, step: r.stepHook}
	if _, err := s.install(Pair{KeyPEM: cr.PrivateKey, CertPEM: cr.Certificate, ChainPEM: cr.IssuerCertificate}, now); err != nil {
		return fail("write", err)
	}
	newLeaf := leafCerts[0]
	j.cs.LastAttempt, j.cs.LastSuccess = now, now
	j.cs.Failures, j.cs.NextAttempt, j.cs.LastError = 0, time.Time{}, ""
	j.cs.ARI = nil
	res.Action, res.Reason, res.NotAfter, res.Replaced = Renewed, j.dec.Reason, newLeaf.NotAfter, req.ReplacesCertID != ""
	if !j.cs.NoARI {
		// Ask now, so the next run knows the window without asking.
		r.fetchARI(client, c, newLeaf, j.cs, now)
	}
	res.Next = decide(now, c, newLeaf, j.cs).Next
	j.cs.HookPending = true
	if err := r.runHooks(ctx, c); err != nil {
		res.Action, res.Reason, res.Err = Failed, "renewed, but a deploy hook failed", err
		return res
	}
	j.cs.HookPending = false
	return res
}

// replaces is the ARI identifier of the certificate being replaced, when
// the CA has answered ARI for it and the names are unchanged.
func (r *Renewer) replaces(c *Certificate, leaf *x509.Certificate, cs *CertState) string {
	if leaf == nil || cs.NoARI || cs.ARI == nil || mismatch(c, leaf) != "" {
		return ""
	}
	id, err := certificate.MakeARICertID(leaf)
	if err != nil || id != cs.ARI.CertID {
		return ""
	}
	return id
}

// fetchARI asks the CA for leaf's renewal window and records it. Errors are
// logged: without ARI the lifetime rule decides.
func (r *Renewer) fetchARI(client *lego.Client, c *Certificate, leaf *x509.Certificate, cs *CertState, now time.Time) {
	id, err := certificate.MakeARICertID(leaf)
	if err != nil {
		return
	}
	info, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	switch {
	case errors.Is(err, api.ErrNoARI):
		cs.NoARI, cs.ARI = true, nil
	case err != nil:
		r.log.Warn("renewal info unavailable; using the lifetime rule", "cert", c.Name, "err", err)
		cs.ARI = &ARIState{CertID: id, NextCheck: now.Add(time.Hour).UTC()}
	default:
		cs.NoARI = false
		cs.ARI = ariFromResponse(now, id, info)
		r.log.Info("renewal window", "cert", c.Name, "start", cs.ARI.WindowStart, "end", cs.ARI.WindowEnd, "renew_at", cs.ARI.RenewAt, "next_check", cs.ARI.NextCheck)
	}
}

// client returns a lego client for c with its challenge solver set.
func (r *Renewer) client(c *Certificate) (*lego.Client, error) {
	acc := r.accounts[c.Account]
	cfg, err := acc.legoConfig(r.opts.UserAgent)
	if err != nil {
		return nil, err
	}
	cfg.Certificate.KeyType, _ = parseKeyType(c.KeyType)
	client, err := lego.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", acc.cfg.Directory, err)
	}
	ch := c.Challenge
	switch {
	case ch.HTTP01 != nil:
		err = client.Challenge.SetHTTP01Provider(r.solvers.httpProvider(listenAddr(ch.HTTP01.Address, ch.HTTP01.Port)))
	case ch.Webroot != nil:
		var p *webroot.HTTPProvider
		if p, err = webroot.NewHTTPProvider(ch.Webroot.Path); err != nil {
			// lego's message does not say which directory.
			err = fmt.Errorf("webroot %s: %w", ch.Webroot.Path, err)
		} else {
			err = client.Challenge.SetHTTP01Provider(p)
		}
	case ch.TLSALPN01 != nil:
		err = client.Challenge.SetTLSALPN01Provider(r.solvers.tlsProvider(listenAddr(ch.TLSALPN01.Address, ch.TLSALPN01.Port)))
	case ch.DNS01 != nil:
		var p challenge.Provider
		if p, err = r.dnsProvider(ch.DNS01); err == nil {
			var opts []dns01.ChallengeOption
			if ch.DNS01.SkipAuthoritativeCheck {
				opts = append(opts, dns01.DisableAuthoritativeNssPropagationRequirement(), dns01.RecursiveNSsPropagationRequirement())
			}
			err = client.Challenge.SetDNS01Provider(p, opts...)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return client, nil
}

// dnsProvider builds the named lego provider with the configured variables
// set in the environment only while it reads them.
func (r *Renewer) dnsProvider(d *DNS01) (challenge.Provider, error) {
	if r.opts.DNSProvider == nil {
		return nil, errors.New("dns01: this program was built without DNS providers")
	}
	r.envMu.Lock()
	defer r.envMu.Unlock()
	vars := map[string]string{}
	for k, v := range d.Env {
		vars[k] = v
	}
	for k, path := range d.EnvFiles {
		vars[k+"_FILE"] = path
	}
	saved := map[string]*string{}
	for k, v := range vars {
		if old, ok := os.LookupEnv(k); ok {
			saved[k] = &old
		} else {
			saved[k] = nil
		}
		os.Setenv(k, v)
	}
	defer func() {
		for k, old := range saved {
			if old == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *old)
			}
		}
	}()
	p, err := r.opts.DNSProvider(d.Provider)
	if err != nil {
		return nil, fmt.Errorf("dns01 provider %q: %w", d.Provider, err)
	}
	return p, nil
}

// runHooks runs c's deploy hooks in order, stopping at the first failure.
func (r *Renewer) runHooks(ctx context.Context, c *Certificate) error {
	o := &c.Output
	env := []string{
		"RAMPART_ACME_NAME=" + c.Name,
		"RAMPART_ACME_DOMAINS=" + strings.Join(c.Domains, " "),
		"RAMPART_ACME_DIR=" + o.CurrentDir(),
		"RAMPART_ACME_KEY=" + filepath.Join(o.CurrentDir(), FileKey),
		"RAMPART_ACME_CERT=" + filepath.Join(o.CurrentDir(), FileCert),
		"RAMPART_ACME_CHAIN=" + filepath.Join(o.CurrentDir(), FileChain),
		"RAMPART_ACME_FULLCHAIN=" + filepath.Join(o.CurrentDir(), FileFullChain),
		"RAMPART_ACME_COMBINED=" + filepath.Join(o.CurrentDir(), FileCombined),
	}
	for _, cmd := range c.DeployHooks {
		if _, err := hook.Run(ctx, r.log.With("cert", c.Name), hook.Hook{Command: cmd, Timeout: r.cfg.hookTimeout(), Env: env, Environ: r.hookEnv}); err != nil {
			return err
		}
	}
	return nil
}

// leafOf reads the live leaf certificate; nil if there is none.
func leafOf(o *Output) (*x509.Certificate, error) {
	certs, err := readCurrent(o)
	if err != nil || certs == nil {
		return nil, err
	}
	return certs[0], nil
}
