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
	// Step, when set, is called after every durable step of a renewal
	// ("deploy recorded", each file written, "swap", "installed", "hook 1
	// started", "hook 1 ran", "hook 1 recorded", "deployed"); the crash
	// tests kill the process there.
	Step func(string)
}

// Action is what a run did with one certificate.
type Action string

// Actions in a [Result].
const (
	Renewed Action = "renewed"
	NotDue  Action = "not due"
	Failed  Action = "FAILED"
	// BackingOff: earlier attempts failed and their backoff has not ended;
	// nothing was tried. acme-renew run exits 4 for it.
	BackingOff Action = "BACKOFF"
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

// BackingOff counts the certificates held back by the backoff of earlier
// failures (nothing was tried for them).
func (s *Summary) BackingOff() int {
	n := 0
	for _, r := range s.Results {
		if r.Action == BackingOff {
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
	fmt.Fprintf(w, "acme-renew: %d certificate(s): %d renewed, %d not due, %d backing off, %d failed\n",
		len(s.Results), counts[Renewed], counts[NotDue], counts[BackingOff], counts[Failed])
}

// Renewer renews the certificates of one config.
type Renewer struct {
	cfg      *Config
	opts     Options
	log      *slog.Logger
	accounts map[string]*account
	solvers  *solverServers
	// hookEnv is the environment hooks start from: the process's when the
	// Renewer was made. dns01 providers read their settings from the
	// process environment while they are built, and another certificate's
	// hook may start meanwhile.
	hookEnv []string
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

// HasCertificate reports whether a certificate is named name, as
// [Options.Force] and "acme-renew run --force NAME" name them.
func (c *Config) HasCertificate(name string) bool {
	for _, cert := range c.Certificates {
		if cert.Name == name {
			return true
		}
	}
	return false
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
//
// Deploy hooks are owed from the moment a new certificate is obtained: the
// debt is written to the state file, fsynced, before the certificate is
// switched in, and each hook's success is recorded as it happens. A run
// killed at any point therefore leaves the next run enough to finish: it
// runs, for the certificate on disk, exactly the hooks not recorded as
// done. That is at-least-once, not exactly-once: a hook that succeeded
// but whose success was not yet recorded when the process died runs
// again; deploy hooks must be idempotent (a reload is).
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
	sv := &stateSaver{st: st, path: r.cfg.StatePath()}
	now := r.opts.Now()
	sum := &Summary{Results: make([]Result, len(r.cfg.Certificates))}
	var jobs []*job
	hookErrs := make([]error, len(r.cfg.Certificates))
	for i, c := range r.cfg.Certificates {
		_, known := st.Certificates[c.Name]
		cs := st.cert(c.Name).clone()
		leaf, err := leafOf(&c.Output)
		if err != nil {
			r.log.Warn("certificate on disk unreadable; treating as missing", "cert", c.Name, "err", err)
		}
		before := cs.clone()
		owed := reconcileDeploy(c, leaf, cs, known)
		dec := decide(now, c, leaf, cs)
		if slices.Contains(r.opts.Force, c.Name) {
			dec = Decision{Due: true, Reason: "forced"}
		}
		res := Result{Name: c.Name, Action: NotDue, Reason: dec.Reason, Next: dec.Next}
		if dec.BackingOff {
			res.Action = BackingOff
		}
		if leaf != nil {
			res.NotAfter = leaf.NotAfter
		}
		sum.Results[i] = res
		if owed && !dec.Due {
			// Hooks owed for the certificate on disk (a failed hook, or a
			// run that died) are run without the CA.
			r.log.Info("deploy hooks owed for the certificate on disk", "cert", c.Name, "done_before", len(cs.Deploy.Done))
			hookErrs[i] = r.deploy(ctx, c, cs, sv)
		} else if !sameDeploy(before, cs) {
			if err := sv.put(c.Name, cs); err != nil {
				r.log.Error("save state", "err", err)
			}
		}
		if dec.Due || dec.CheckARI {
			jobs = append(jobs, &job{i: i, cert: c, leaf: leaf, cs: cs, dec: dec})
		}
	}
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	var sumMu sync.Mutex
	for _, j := range jobs {
		if ctx.Err() != nil {
			sum.Results[j.i] = Result{Name: j.cert.Name, Action: Failed, Reason: "interrupted", Err: ctx.Err()}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res := r.process(ctx, j, sv)
			if err := sv.put(j.cert.Name, j.cs); err != nil {
				r.log.Error("save state", "err", err)
			}
			sumMu.Lock()
			sum.Results[j.i] = res
			sumMu.Unlock()
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

// stateSaver writes the state file whenever a worker's certificate
// changes, so that what a run learned survives the run being killed.
type stateSaver struct {
	mu   sync.Mutex
	st   *State
	path string
}

// put records a copy of cs as name's state and writes the file (fsynced).
func (s *stateSaver) put(name string, cs *CertState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Certificates[name] = cs.clone()
	return s.st.Save(s.path)
}

// reconcileDeploy decides whether deploy hooks are owed for the
// certificate on disk and sets cs.Deploy accordingly. known says the state
// file had an entry for the certificate.
//
//   - a deployment recorded for this very certificate and not finished
//     (a hook failed, or the run died): owed, minus the hooks done;
//   - the certificate whose hooks all succeeded: nothing owed;
//   - any other certificate (the run died after recording a deployment
//     but before switching, and the old certificate is still there: it
//     was deployed, Deployed says so; or the files were changed by hand):
//     owed, all hooks;
//   - no record at all (the state file was lost, or written by an
//     acme-renew that did not record deployments and had a hook pending):
//     owed, all hooks, since a reload too many is harmless and one too
//     few leaves the service on the old certificate until it expires.
//     An entry from such an older acme-renew without a pending hook is
//     taken as deployed.
func reconcileDeploy(c *Certificate, leaf *x509.Certificate, cs *CertState, known bool) bool {
	fp := certSum(leaf)
	switch {
	case leaf == nil:
		cs.Deploy, cs.HookPending = nil, false
		return false
	case len(c.DeployHooks) == 0:
		cs.Deploy, cs.HookPending, cs.Deployed = nil, false, fp
		return false
	case cs.Deploy != nil && cs.Deploy.Cert == fp:
	case cs.Deployed == fp:
		cs.Deploy, cs.HookPending = nil, false
		return false
	case cs.Deployed == "" && known && !cs.HookPending && cs.Deploy == nil:
		cs.Deployed = fp
		return false
	default:
		cs.Deploy = &DeployState{Cert: fp}
	}
	cs.HookPending = true
	return true
}

func sameDeploy(a, b *CertState) bool {
	if a.Deployed != b.Deployed || a.HookPending != b.HookPending || (a.Deploy == nil) != (b.Deploy == nil) {
		return false
	}
	return a.Deploy == nil || a.Deploy.Cert == b.Deploy.Cert && slices.Equal(a.Deploy.Done, b.Deploy.Done)
}

// deploy runs the hooks cs.Deploy still owes, in order, recording each
// success in the state file as soon as it happens; the first failure
// stops the rest. When all are done the certificate is Deployed.
func (r *Renewer) deploy(ctx context.Context, c *Certificate, cs *CertState, sv *stateSaver) error {
	seen := map[string]int{}
	for i, cmd := range c.DeployHooks {
		seen[cmd]++
		// The k-th occurrence of a command is done when Done holds it k times.
		done := 0
		for _, d := range cs.Deploy.Done {
			if d == cmd {
				done++
			}
		}
		if done >= seen[cmd] {
			continue
		}
		r.step(fmt.Sprintf("hook %d started", i+1))
		if err := r.runHook(ctx, c, cmd); err != nil {
			return err
		}
		r.step(fmt.Sprintf("hook %d ran", i+1))
		cs.Deploy.Done = append(cs.Deploy.Done, cmd)
		if err := sv.put(c.Name, cs); err != nil {
			// Not fatal: the hook runs again next time (at least once).
			r.log.Error("save state", "err", err)
		}
		r.step(fmt.Sprintf("hook %d recorded", i+1))
	}
	cs.Deployed, cs.Deploy, cs.HookPending = cs.Deploy.Cert, nil, false
	if err := sv.put(c.Name, cs); err != nil {
		r.log.Error("save state", "err", err)
	}
	r.step("deployed")
	return nil
}

func (r *Renewer) step(name string) {
	if r.opts.Step != nil {
		r.opts.Step(name)
	}
}

// process checks ARI if needed, then renews if due. It updates j.cs.
func (r *Renewer) process(ctx context.Context, j *job, sv *stateSaver) Result {
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
		j.cs.ConfigHash = c.hash
		r.log.Error("certificate failed", "cert", c.Name, "step", reason, "failures", j.cs.Failures, "retry_after", j.cs.NextAttempt, "err", err)
		res.Action, res.Reason, res.Err, res.Next = Failed, reason, err, j.cs.NextAttempt
		return res
	}
	acc := r.accounts[c.Account]
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
	if id := r.replaces(c, j.leaf, j.cs, acc.uri()); id != "" {
		req.ReplacesCertID = id
	}
	r.log.Info("obtaining certificate", "cert", c.Name, "domains", c.Domains, "reason", j.dec.Reason, "replaces", req.ReplacesCertID)
	cr, err := client.Certificate.Obtain(req)
	if problemType(err) == accountDoesNotExist {
		// The CA lost or deleted the account (a CA reset, a new CA at the
		// same URL): register again, with EAB when configured.
		stale := acc.uri()
		r.log.Warn("the CA does not know the account; registering again", "cert", c.Name, "account", c.Account, "url", stale)
		if err = acc.reregister(r.opts.UserAgent, stale); err == nil {
			if client, err = r.client(c); err == nil {
				cr, err = client.Certificate.Obtain(req)
			}
		}
	}
	if err != nil && req.ReplacesCertID != "" && replacesRefused(err) {
		// The CA does not take this certificate as the one replaced: an
		// earlier run got a replacement but died before writing it
		// (alreadyReplaced), or the CA does not know the certificate
		// (another CA, a reset one). Its ARI answer is stale too.
		r.log.Warn("the CA refused the order naming the old certificate; ordering without replaces", "cert", c.Name, "err", err)
		req.ReplacesCertID = ""
		j.cs.ARI = nil
		cr, err = client.Certificate.Obtain(req)
	}
	if err != nil {
		return fail("obtain", err)
	}
	leafCerts, err := pemcert.Parse(cr.Certificate)
	if err != nil {
		return fail("parse the issued certificate", err)
	}
	newLeaf := leafCerts[0]
	fp := certSum(newLeaf)
	// Write-ahead: the hooks are owed before the certificate switches.
	prevDeploy, prevPending := j.cs.Deploy, j.cs.HookPending
	j.cs.Deploy, j.cs.HookPending = &DeployState{Cert: fp}, len(c.DeployHooks) > 0
	if err := sv.put(c.Name, j.cs); err != nil {
		j.cs.Deploy, j.cs.HookPending = prevDeploy, prevPending
		return fail("record the deployment in the state file before switching certificates", err)
	}
	r.step("deploy recorded")
	s := &store{out: c.Output, step: r.opts.Step}
	if _, err := s.install(Pair{KeyPEM: cr.PrivateKey, CertPEM: cr.Certificate, ChainPEM: cr.IssuerCertificate}, now); err != nil {
		j.cs.Deploy, j.cs.HookPending = prevDeploy, prevPending
		return fail("write", err)
	}
	j.cs.LastAttempt, j.cs.LastSuccess = now, now
	j.cs.Failures, j.cs.NextAttempt, j.cs.LastError = 0, time.Time{}, ""
	j.cs.ConfigHash = c.hash
	j.cs.IssuedBy = &IssuedBy{Cert: fp, Directory: c.directory, Account: acc.uri()}
	j.cs.ARI = nil
	res.Action, res.Reason, res.NotAfter, res.Replaced = Renewed, j.dec.Reason, newLeaf.NotAfter, req.ReplacesCertID != ""
	if !j.cs.NoARI {
		// Ask now, so the next run knows the window without asking.
		r.fetchARI(client, c, newLeaf, j.cs, now)
	}
	res.Next = decide(now, c, newLeaf, j.cs).Next
	if err := sv.put(c.Name, j.cs); err != nil {
		r.log.Error("save state", "err", err)
	}
	r.step("installed")
	if len(c.DeployHooks) == 0 {
		j.cs.Deployed, j.cs.Deploy = fp, nil
		return res
	}
	if err := r.deploy(ctx, c, j.cs, sv); err != nil {
		res.Action, res.Reason, res.Err = Failed, "renewed, but a deploy hook failed", err
		return res
	}
	return res
}

const (
	accountDoesNotExist = "urn:ietf:params:acme:error:accountDoesNotExist"
	malformed           = "urn:ietf:params:acme:error:malformed"
)

// problemType is the ACME problem type of err, "" if it is none.
func problemType(err error) string {
	var pd *legoacme.ProblemDetails
	if errors.As(err, &pd) {
		return pd.Type
	}
	return ""
}

// replacesRefused reports whether the CA refused an order because of its
// "replaces" field: alreadyReplaced, a 409, a malformed request (what
// Pebble and Boulder answer for a certificate they do not know: "parsing
// ARI CertID failed"), or any answer saying it cannot find the certificate
// (Pebble v2.10.1 answers serverInternal "could not find an order for the
// given certificate" when the serial's DER form has a leading zero byte).
func replacesRefused(err error) bool {
	var pd *legoacme.ProblemDetails
	if !errors.As(err, &pd) {
		return false
	}
	if pd.Type == legoacme.RateLimitedErr {
		return false
	}
	d := strings.ToLower(pd.Detail)
	return pd.Type == legoacme.AlreadyReplacedErr || pd.HTTPStatus == http.StatusConflict ||
		pd.Type == malformed || strings.Contains(d, "ari certid") || strings.Contains(d, "replaces") ||
		strings.Contains(d, "could not find an order for the given certificate")
}

// replaces is the ARI identifier of the certificate being replaced. It is
// named only when the certificate on disk was issued by the account's
// current CA and account (a CA asked to replace a certificate it never
// issued refuses the order) and that CA gave a usable renewal window for
// it; and only when the names are unchanged.
func (r *Renewer) replaces(c *Certificate, leaf *x509.Certificate, cs *CertState, accountURI string) string {
	if leaf == nil || cs.NoARI || cs.ARI == nil || mismatch(c, leaf) != "" {
		return ""
	}
	ib := cs.IssuedBy
	if ib == nil || ib.Cert != certSum(leaf) || ib.Directory != c.directory || ib.Account == "" || ib.Account != accountURI {
		return ""
	}
	if cs.ARI.Directory != c.directory || cs.ARI.RenewAt.IsZero() {
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
		cs.ARI = &ARIState{CertID: id, Directory: c.directory, NextCheck: now.Add(time.Hour).UTC()}
	default:
		cs.NoARI = false
		cs.ARI = ariFromResponse(now, id, info)
		cs.ARI.Directory = c.directory
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
	p, err := buildDNSProvider(d, r.opts.DNSProvider)
	if err != nil {
		return nil, fmt.Errorf("dns01 provider %q: %w", d.Provider, err)
	}
	return p, nil
}

// envMu serializes changes to the process environment, which lego's DNS
// providers read their settings from.
var envMu sync.Mutex

// buildDNSProvider calls build with d's variables set in the process
// environment, and restores the environment afterwards.
func buildDNSProvider(d *DNS01, build DNSProviderFunc) (challenge.Provider, error) {
	envMu.Lock()
	defer envMu.Unlock()
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
	return build(d.Provider)
}

// CheckDNSProviders builds every dns01 certificate's provider, as a run
// would, so that an unknown provider name or a provider missing required
// variables is a configuration error naming the file and line, found by
// list, check and run alike rather than by the first renewal. Building a
// lego provider reads its variables (and NAME_FILE files) and makes no
// request.
func (c *Config) CheckDNSProviders(build DNSProviderFunc) error {
	var errs []error
	for _, cert := range c.Certificates {
		d := cert.Challenge.DNS01
		if d == nil {
			continue
		}
		if _, err := buildDNSProvider(d, build); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: certificate %q: dns01 provider %q: %w", c.where(cert.dnsLine), cert.Name, d.Provider, err))
		}
	}
	return errors.Join(errs...)
}

// runHook runs one of c's deploy hooks.
func (r *Renewer) runHook(ctx context.Context, c *Certificate, cmd string) error {
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
	_, err := hook.Run(ctx, r.log.With("cert", c.Name), hook.Hook{Command: cmd, Timeout: r.cfg.hookTimeout(), Env: env, Environ: r.hookEnv})
	return err
}

// leafOf reads the live leaf certificate; nil if there is none.
func leafOf(o *Output) (*x509.Certificate, error) {
	certs, err := readCurrent(o)
	if err != nil || certs == nil {
		return nil, err
	}
	return certs[0], nil
}
