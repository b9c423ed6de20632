package bastion

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glssh "github.com/gliderlabs/ssh"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/guard"
	"github.com/rampart-sec/rampart/bastion/internal/quickack"
	"github.com/rampart-sec/rampart/bastion/mfa"
)

// RecordFunc serves one session against a record-mode target, recorded,
// and returns when it ends with the exit status already sent. The
// bastion/recorded package's (*Proxy).Serve is one, through a small
// adapter in cmd/bastion.
type RecordFunc func(sess glssh.Session, user string, t *Target) error

// Options are a Server's dependencies. Config, Policy, HostSigners, Audit
// and TOTP are required.
type Options struct {
	Config      *Config
	Policy      *Policy
	HostSigners []gossh.Signer
	Audit       *audit.Log
	TOTP        *mfa.TOTPStore
	Duo         *mfa.Duo // nil: Duo not configured
	DuoFailOpen bool     // accept when Duo is unreachable (default: deny)
	Guard       *guard.Guard
	Record      RecordFunc // nil: record mode unavailable
	Logger      *slog.Logger
	Registry    prometheus.Registerer
	// Dial replaces net.Dialer for jumps (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server is the bastion's SSH server.
type Server struct {
	opts    Options
	pol     atomic.Pointer[Policy]
	self    *Self // where this server listens; shared by every policy it is given
	log     *slog.Logger
	m       *metrics
	srv     *glssh.Server
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	grace   time.Duration
	timeout time.Duration

	lockMu    sync.Mutex
	lockNotes map[netip.Addr]time.Time

	startups startups                        // connections that have not finished both factors
	notes    notes                           // rate limit of the audit records unauthenticated peers cause
	disabled atomic.Pointer[map[string]bool] // users with disabled: true (users.go)
}

type ctxKey struct{}

// connState is what the bastion knows about one connection. Every field
// is guarded by mu: the auth callbacks and the channel handlers run on
// different goroutines.
type connState struct {
	mu          sync.Mutex
	source      netip.Addr
	user        string // bastion user (before any %target)
	target      string // from user%target
	attempted   bool
	keyOK       bool
	keyMethod   string
	keyFP       string
	mfaOK       bool
	failCounted bool
	preauth     bool // counted in Server.startups

	channels        int // open session and direct-tcpip channels
	sessions        int // of which session channels
	channelsRefused int // past max_channels
	refusals        int // refusal records of this connection (maxAuditedRefusals)
}

func (st *connState) authenticated() (user string, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.user, st.keyOK && st.mfaOK
}

func stateOf(ctx glssh.Context) *connState {
	st, _ := ctx.Value(ctxKey{}).(*connState)
	if st == nil {
		// Never nil in practice (set in the conn callback); an empty state
		// is unauthenticated, so everything is refused.
		return &connState{}
	}
	return st
}

// MaxLoginLen bounds the login name ("alice" or "alice%web1") the bastion
// looks at; user names are at most 64 bytes (mfa.ValidUserName), target
// names are short words.
const MaxLoginLen = 256

// splitUser splits "alice%web1" into the bastion user and a target.
func splitUser(login string) (user, target string) {
	user, target, _ = strings.Cut(login, "%")
	return user, target
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Policy == nil || opts.Audit == nil || opts.TOTP == nil || len(opts.HostSigners) == 0 {
		return nil, errors.New("bastion: Config, Policy, Audit, TOTP and HostSigners are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Guard == nil {
		opts.Guard = guard.New(guard.Config{}, guard.Options{Logger: opts.Logger})
	}
	s := &Server{opts: opts, log: opts.Logger, m: newMetrics(opts.Registry),
		grace: time.Duration(opts.Config.LoginGraceTime), timeout: time.Duration(opts.Config.DialTimeout),
		lockNotes: map[netip.Addr]time.Time{}}
	s.self = opts.Policy.self
	s.pol.Store(opts.Policy)
	s.setDisabled(opts.Config)
	s.dial = opts.Dial
	if s.dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		s.dial = d.DialContext
	}
	srv := &glssh.Server{
		Version:              "Rampart_bastion",
		Banner:               opts.Config.Banner,
		IdleTimeout:          time.Duration(opts.Config.IdleTimeout),
		ConnCallback:         s.onConn,
		PublicKeyHandler:     s.publicKey,
		ServerConfigCallback: s.serverConfig,
		Handler:              s.handleSession,
		SubsystemHandlers:    map[string]glssh.SubsystemHandler{"sftp": s.handleSFTP},
		ChannelHandlers: map[string]glssh.ChannelHandler{
			"session":      s.limitChannels(true, s.sessionChannel),
			"direct-tcpip": s.limitChannels(false, s.directTCPIP),
			"default":      s.refuseChannel,
		},
		RequestHandlers: map[string]glssh.RequestHandler{
			"tcpip-forward":                          s.refuseGlobal,
			"cancel-tcpip-forward":                   s.refuseGlobal,
			"streamlocal-forward@openssh.com":        s.refuseGlobal,
			"cancel-streamlocal-forward@openssh.com": s.refuseGlobal,
			"keepalive@openssh.com":                  func(glssh.Context, *glssh.Server, *gossh.Request) (bool, []byte) { return false, nil },
		},
	}
	for _, hs := range opts.HostSigners {
		srv.AddHostKey(hs)
	}
	s.srv = srv
	return s, nil
}

// Serve accepts connections on ln until ctx ends, then closes every
// connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.self.Add(ln.Addr().String()); err != nil {
		return fmt.Errorf("bastion: serve: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		s.srv.Close()
		// Close may run before gliderlabs tracks the listener.
		ln.Close()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, glssh.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("bastion: serve: %w", err)
	}
}

func (s *Server) policy() *Policy { return s.pol.Load() }

// SetPolicy replaces users, groups and targets (SIGHUP in cmd/bastion, so
// "bastion user add" needs no restart). Connections already authenticated
// keep their session; new logins and new jumps use the new policy.
func (s *Server) SetPolicy(p *Policy) { s.pol.Store(p.withSelf(s.self)) }

// SetRecorder installs the recorded-session proxy. Call it before Serve.
func (s *Server) SetRecorder(f RecordFunc) { s.opts.Record = f }

// AuditEvent appends a loosely typed event (the recording proxy's) to the
// audit log as a "session" record whose method is the event name.
func (s *Server) AuditEvent(event string, fields map[string]any) {
	f := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		f[k] = v
	}
	f["method"] = event
	if err := s.opts.Audit.Event(audit.TypeSession, f); err != nil {
		s.log.Error("bastion: audit log write failed", "err", err, "event", event)
	}
}

// Close stops the server and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) audit(rec audit.Record) error {
	if err := s.opts.Audit.Append(rec); err != nil {
		s.log.Error("bastion: audit log write failed", "err", err, "type", rec.Type, "user", rec.User)
		return err
	}
	return nil
}

// maxAuditedRefusals bounds the refusal records one connection writes: a
// logged-in client can send requests the bastion refuses (X11 channels,
// tcpip-forward) as fast as it likes, and each would be an audit line.
// Past it refusals are counted in rampart_bastion_refusals_total only.
const maxAuditedRefusals = 64

func (s *Server) refusal(st *connState, kind, reason string, extra map[string]any) {
	st.mu.Lock()
	user, src := st.user, st.source
	st.refusals++
	n := st.refusals
	st.mu.Unlock()
	s.m.refusals.WithLabelValues(kind).Inc()
	if n > maxAuditedRefusals {
		return
	}
	if n == maxAuditedRefusals {
		reason += fmt.Sprintf(" (refusal %d on this connection: later ones are counted in rampart_bastion_refusals_total only)", n)
	}
	s.log.Info("bastion: refused", "user", user, "source", src, "kind", kind, "reason", audit.Truncate(reason, 512))
	rec := audit.Record{Type: audit.TypeRefusal, User: user, Source: addrString(src), Method: kind, Result: audit.ResultFailure, Reason: reason}
	if t, ok := extra["target"].(string); ok {
		rec.Target = t
		delete(extra, "target")
	}
	if len(extra) > 0 {
		rec.Fields = extra
	}
	s.audit(rec)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func sourceOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// trackedConn counts a connection that tried to log in and never
// succeeded as one failure when it closes, so a scanner offering stolen
// keys is counted once per connection and a legitimate user whose agent
// holds several keys is not counted at all.
type trackedConn struct {
	net.Conn
	r     *bufio.Reader
	s     *Server
	st    *connState
	once  sync.Once
	timer *time.Timer
}

// Read goes through a large buffer: x/crypto reads a packet header, then
// its body, and a bulk jump would otherwise cost several system calls per
// 32 KiB packet.
func (c *trackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.timer.Stop()
		st := c.st
		st.mu.Lock()
		count := st.attempted && !(st.keyOK && st.mfaOK) && !st.failCounted
		st.failCounted = st.failCounted || count
		if st.preauth {
			st.preauth = false
			c.s.startups.done(st.source)
		}
		src := st.source
		st.mu.Unlock()
		if count {
			// The source's failure only: whoever names a user can offer
			// wrong keys (see lockout.go).
			c.s.opts.Guard.Fail(src, "", "authentication failed")
		}
	})
	return c.Conn.Close()
}

func (s *Server) onConn(ctx glssh.Context, conn net.Conn) net.Conn {
	// A locked-out source is let in (within the startup limits) so it can
	// be told it is locked: its keys are refused and keyboard-interactive
	// says so (lockout.go).
	st := &connState{source: sourceOf(conn.RemoteAddr())}
	// Like sshd's MaxStartups and PerSourceMaxStartups: unauthenticated
	// connections cost CPU (key exchange) and memory; past the limits new
	// ones are dropped.
	if limit, n := s.startups.admit(st.source, s.opts.Config.MaxStartups, s.opts.Config.MaxStartupsPerSource); limit != "" {
		s.dropStartup(st.source, limit, n)
		return nil
	}
	st.preauth = true
	ctx.SetValue(ctxKey{}, st)
	tc := &trackedConn{Conn: conn, r: bufio.NewReaderSize(quickack.Reader(conn), 128<<10), s: s, st: st}
	// LoginGraceTime: a connection that has not finished both factors in
	// time is dropped (gliderlabs resets deadlines on every read, so a
	// timer does it).
	tc.timer = time.AfterFunc(s.grace, func() {
		if _, ok := st.authenticated(); !ok {
			conn.Close()
		}
	})
	return tc
}

// firstLockNotice rate-limits the audit records of a locked-out source's
// connections, so a flood cannot fill the disk through the audit log.
func (s *Server) firstLockNotice(src netip.Addr) bool {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	now := time.Now()
	if last, ok := s.lockNotes[src]; ok && now.Sub(last) < time.Minute {
		return false
	}
	if len(s.lockNotes) > 10000 {
		clear(s.lockNotes)
	}
	s.lockNotes[src] = now
	return true
}

func fingerprint(k gossh.PublicKey) string {
	if c, ok := k.(*gossh.Certificate); ok {
		k = c.Key
	}
	sum := sha256.Sum256(k.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// publicKey is gliderlabs' PublicKeyHandler: it only decides whether the
// key is acceptable. The login is not authorized here: the signature is
// checked by x/crypto, then VerifiedPublicKeyCallback returns partial
// success and asks for the second factor.
func (s *Server) publicKey(ctx glssh.Context, key glssh.PublicKey) bool {
	st := stateOf(ctx)
	if login := ctx.User(); len(login) > MaxLoginLen {
		// Refused before it is kept anywhere; the audit gets its head.
		st.mu.Lock()
		st.attempted = true
		src := st.source
		st.mu.Unlock()
		s.m.auth.WithLabelValues("publickey", audit.ResultFailure).Inc()
		s.audit(audit.Record{Type: audit.TypeAuth, User: audit.Truncate(login, 64), Source: addrString(src), Method: "publickey", Result: audit.ResultFailure,
			Reason: fmt.Sprintf("user name of %d bytes (at most %d)", len(login), MaxLoginLen)})
		return false
	}
	user, target := splitUser(ctx.User())
	st.mu.Lock()
	st.attempted = true
	st.user, st.target = user, target
	src := st.source
	st.mu.Unlock()
	rec := audit.Record{Type: audit.TypeAuth, User: user, Source: addrString(src), Method: "publickey", Result: audit.ResultFailure,
		Fields: map[string]any{"key": fingerprint(key), "key_type": key.Type()}}
	// Only the source's lockout is checked here; a locked-out user is
	// told so after their own key (secondFactor), never before it.
	if locked, why := s.opts.Guard.Locked(src, ""); locked {
		// Not counted again: retrying while locked must not extend it.
		st.mu.Lock()
		st.failCounted = true
		st.mu.Unlock()
		s.m.auth.WithLabelValues("publickey", audit.ResultFailure).Inc()
		if s.notes.first("lockout-key", src) {
			rec.Reason = why + " (further keys from this source are counted in metrics, audited at most once a minute)"
			s.audit(rec)
		}
		return false
	}
	method, err := s.policy().CheckKey(user, key, src)
	rec.Method = method
	if err != nil && s.isDisabled(user) {
		err = errors.New("user disabled")
	}
	if err != nil {
		rec.Reason = err.Error()
		s.m.auth.WithLabelValues(method, audit.ResultFailure).Inc()
		s.audit(rec)
		return false
	}
	st.mu.Lock()
	st.keyMethod, st.keyFP = method, fingerprint(key)
	st.mu.Unlock()
	return true
}

func (s *Server) serverConfig(ctx glssh.Context) *gossh.ServerConfig {
	st := stateOf(ctx)
	var lockedSource func(gossh.ConnMetadata, gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error)
	if locked, _ := s.opts.Guard.Locked(st.source, ""); locked {
		lockedSource = s.lockedSourceLogin(st)
	}
	return &gossh.ServerConfig{
		MaxAuthTries:                s.opts.Config.MaxAuthTries,
		KeyboardInteractiveCallback: lockedSource,
		VerifiedPublicKeyCallback: func(conn gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			user, _ := splitUser(conn.User())
			st.mu.Lock()
			src, sameUser := st.source, user == st.user
			st.mu.Unlock()
			// Decide again on the key that was actually signed with: the
			// client may have offered others since.
			method, err := s.policy().CheckKey(user, key, src)
			if !sameUser || err != nil {
				return nil, errors.New("bastion: key no longer acceptable")
			}
			fp := fingerprint(key)
			st.mu.Lock()
			st.keyOK, st.keyMethod, st.keyFP = true, method, fp
			st.mu.Unlock()
			s.m.auth.WithLabelValues(method, "partial").Inc()
			if err := s.audit(audit.Record{Type: audit.TypeAuth, User: user, Source: addrString(src), Method: method,
				Result: audit.ResultSuccess, Reason: "key verified; second factor required",
				Fields: map[string]any{"key": fp}}); err != nil {
				return nil, errors.New("bastion: audit unavailable")
			}
			return nil, &gossh.PartialSuccessError{Next: gossh.ServerAuthCallbacks{
				KeyboardInteractiveCallback: func(conn gossh.ConnMetadata, client gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
					return s.secondFactor(ctx, st, conn, client)
				},
			}}
		},
	}
}
