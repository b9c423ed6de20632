package bastion

import (
	"context"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/internal/quickack"
)

// limitChannels caps the channels open at once on one connection: a
// client that opens thousands costs the bastion a goroutine, buffers and,
// for jumps, a connection each. Sessions are capped at max_sessions (like
// sshd's MaxSessions), all channels at max_channels (jumps too: a
// ControlMaster connection carries one per ProxyJump host, for as long as
// ControlPersist keeps it). Past a cap a channel is rejected; the first
// refusal on a connection is audited, the rest are counted in
// rampart_bastion_refusals_total{kind="channel-limit"}, so a flood cannot
// fill the audit log either.
func (s *Server) limitChannels(session bool, h glssh.ChannelHandler) glssh.ChannelHandler {
	return func(srv *glssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx glssh.Context) {
		st := stateOf(ctx)
		cfg := s.opts.Config
		var why string
		st.mu.Lock()
		switch {
		case st.channels >= cfg.MaxChannels:
			why = fmt.Sprintf("more than %d channels open on one connection (max_channels)", cfg.MaxChannels)
		case session && st.sessions >= cfg.MaxSessions:
			why = fmt.Sprintf("more than %d sessions open on one connection (max_sessions)", cfg.MaxSessions)
		}
		if why != "" {
			st.channelsRefused++
		} else {
			st.channels++
			if session {
				st.sessions++
			}
		}
		first := st.channelsRefused == 1
		st.mu.Unlock()
		if why != "" {
			if first {
				s.refusal(st, "channel-limit", why+"; later refusals on this connection are counted in metrics only",
					map[string]any{"channel_type": nc.ChannelType()})
			} else {
				s.m.refusals.WithLabelValues("channel-limit").Inc()
			}
			nc.Reject(gossh.ResourceShortage, "too many open channels on this connection")
			return
		}
		defer func() {
			st.mu.Lock()
			st.channels--
			if session {
				st.sessions--
			}
			st.mu.Unlock()
		}()
		h(srv, conn, nc, ctx)
	}
}

// Bounds on what a session may send before its shell, exec or subsystem
// request: gliderlabs keeps every env request.
const (
	maxEnvRequests = 64
	maxEnvBytes    = 4096
)

// refuseChannel rejects every channel type the bastion does not serve
// (x11, forwarded-tcpip, direct-streamlocal, …).
func (s *Server) refuseChannel(_ *glssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, ctx glssh.Context) {
	s.refusal(stateOf(ctx), "channel", "channel type "+strconv.Quote(nc.ChannelType())+" is not allowed", nil)
	nc.Reject(gossh.Prohibited, "not allowed on this bastion")
}

// refuseGlobal refuses remote forwarding (tcpip-forward and streamlocal).
func (s *Server) refuseGlobal(ctx glssh.Context, _ *glssh.Server, req *gossh.Request) (bool, []byte) {
	s.refusal(stateOf(ctx), "remote-forwarding", req.Type+" is not allowed", nil)
	return false, nil
}

// sessionChannel filters session requests before gliderlabs sees them:
// gliderlabs accepts agent forwarding by default, the bastion never does.
func (s *Server) sessionChannel(srv *glssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx glssh.Context) {
	st := stateOf(ctx)
	if _, ok := st.authenticated(); !ok {
		s.refusal(st, "unauthenticated", "session before the second factor", nil)
		nc.Reject(gossh.Prohibited, "second factor required")
		return
	}
	glssh.DefaultSessionHandler(srv, conn, filteredChannel{NewChannel: nc, s: s, st: st}, ctx)
}

type filteredChannel struct {
	gossh.NewChannel
	s  *Server
	st *connState
}

func (f filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := f.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go func() {
		defer close(out)
		envs, envNoted := 0, false
		for r := range reqs {
			switch r.Type {
			case "env":
				envs++
				if envs > maxEnvRequests || len(r.Payload) > maxEnvBytes {
					if !envNoted {
						envNoted = true
						f.s.refusal(f.st, "env", fmt.Sprintf("environment request %d of %d bytes (at most %d requests of %d bytes; later ones on this channel are refused silently)", envs, len(r.Payload), maxEnvRequests, maxEnvBytes), nil)
					}
					r.Reply(false, nil)
					continue
				}
				out <- r
			case "subsystem":
				var p struct{ Name string }
				if gossh.Unmarshal(r.Payload, &p) != nil || p.Name != "sftp" {
					f.s.refusal(f.st, "subsystem", "subsystem "+strconv.Quote(p.Name)+" is not served", nil)
					r.Reply(false, nil)
					continue
				}
				out <- r
			case "auth-agent-req@openssh.com":
				f.s.refusal(f.st, "agent-forwarding", "agent forwarding is not allowed", nil)
				r.Reply(false, nil)
			case "x11-req":
				f.s.refusal(f.st, "x11", "X11 forwarding is not allowed", nil)
				r.Reply(false, nil)
			default:
				out <- r
			}
		}
	}()
	return ch, out, nil
}

// handleSession serves shell, exec and the menu.
func (s *Server) handleSession(sess glssh.Session) {
	st := stateOf(sess.Context())
	user, ok := st.authenticated()
	if !ok {
		s.refusal(st, "unauthenticated", "session before the second factor", nil)
		sess.Exit(1)
		return
	}
	st.mu.Lock()
	name := st.target
	st.mu.Unlock()
	cmd := sess.RawCommand()
	if name == "" && cmd != "" {
		// "ssh -t alice@bastion web1 [command]"
		first, rest, _ := strings.Cut(strings.TrimSpace(cmd), " ")
		name = first
		sess = &commandSession{Session: sess, Channel: rawChannelOf(sess), raw: strings.TrimSpace(rest)}
	}
	if name == "" {
		s.menu(sess, st, user)
		return
	}
	s.recordTo(sess, st, user, name)
}

// handleSFTP serves "sftp alice%web1@bastion" through the recorder.
func (s *Server) handleSFTP(sess glssh.Session) {
	st := stateOf(sess.Context())
	user, ok := st.authenticated()
	if !ok {
		sess.Exit(1)
		return
	}
	st.mu.Lock()
	name := st.target
	st.mu.Unlock()
	if name == "" {
		fmt.Fprintln(sess.Stderr(), "bastion: sftp needs a target: sftp alice%web1@bastion")
		s.refusal(st, "sftp", "sftp without a target", nil)
		sess.Exit(1)
		return
	}
	s.recordTo(sess, st, user, name)
}

func (s *Server) recordTo(sess glssh.Session, st *connState, user, name string) {
	t := s.policy().Target(name)
	if t == nil || !s.policy().targetAllowed(s.policy().User(user), t) {
		s.refusal(st, "target", fmt.Sprintf("target %q is not in %s's targets", name, user), map[string]any{"target": name})
		fmt.Fprintf(sess.Stderr(), "bastion: %q is not one of your targets\r\n", name)
		sess.Exit(1)
		return
	}
	if err := s.policy().notSelf(sess.Context(), t); err != nil {
		s.refusal(st, "target", err.Error(), map[string]any{"target": t.Name})
		fmt.Fprintf(sess.Stderr(), "bastion: %s is this bastion\r\n", t.Name)
		sess.Exit(1)
		return
	}
	if !t.Allows(ModeRecord) {
		s.refusal(st, "target", fmt.Sprintf("target %s is jump-only", name), map[string]any{"target": name})
		fmt.Fprintf(sess.Stderr(), "bastion: %s is jump-only: ssh -J %s@<bastion> %s\r\n", name, user, name)
		sess.Exit(1)
		return
	}
	if s.opts.Record == nil {
		s.refusal(st, "target", "recorded sessions are not enabled on this bastion", map[string]any{"target": name})
		fmt.Fprintln(sess.Stderr(), "bastion: recorded sessions are not enabled on this bastion")
		sess.Exit(1)
		return
	}
	s.m.active.WithLabelValues("session").Inc()
	defer s.m.active.WithLabelValues("session").Dec()
	if err := s.opts.Record(sess, user, t); err != nil {
		s.log.Warn("bastion: recorded session ended with an error", "user", user, "target", name, "err", err)
	}
}

// commandSession is a session whose command had the target name in front.
// Channel is the session's underlying channel, found where the recording
// proxy looks for it (a field named Channel), so it can bypass
// gliderlabs' newline rewriting just as with an unwrapped session.
type commandSession struct {
	glssh.Session
	Channel gossh.Channel
	raw     string
}

func (c *commandSession) RawCommand() string { return c.raw }
func (c *commandSession) Command() []string  { return strings.Fields(c.raw) }

func rawChannelOf(sess glssh.Session) gossh.Channel {
	v := reflect.ValueOf(sess)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("Channel"); f.IsValid() && f.CanInterface() {
			if ch, ok := f.Interface().(gossh.Channel); ok && ch != nil {
				return ch
			}
		}
	}
	return sess
}

// menu lists the user's targets and serves the one picked: numbers only,
// one keypress plus Enter, 40 columns (menu.go).
func (s *Server) menu(sess glssh.Session, st *connState, user string) {
	m := NewMenu(s.policy().Allowed(user))
	w := sess
	for _, l := range m.Lines(user) {
		fmt.Fprint(w, l+"\r\n")
	}
	if _, _, isPty := sess.Pty(); !isPty || len(m.Choices) == 0 {
		sess.Exit(0)
		return
	}
	for {
		fmt.Fprint(w, "\r\nNumber (q to quit): ")
		line, err := ReadMenuLine(sess, sess, 16)
		if err != nil {
			sess.Exit(0)
			return
		}
		n, ok := ParseMenuChoice(line, len(m.Choices))
		if line == "q" || line == "quit" {
			sess.Exit(0)
			return
		}
		if !ok {
			fmt.Fprintf(w, "Pick 1 to %d.\r\n", len(m.Choices))
			continue
		}
		t := m.Choices[n-1]
		fmt.Fprint(w, fit("Connecting to "+t.Name+"…")+"\r\n")
		s.recordTo(sess, st, user, t.Name)
		return
	}
}

// ParseMenuChoice turns what was typed at the menu into a 1-based index.
func ParseMenuChoice(line string, n int) (int, bool) {
	v, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || v < 1 || v > n {
		return 0, false
	}
	return v, true
}

// ReadMenuLine reads one line from a terminal in raw mode, echoing what
// is typed and handling backspace; Ctrl-C or Ctrl-D ends it with io.EOF.
// Lines longer than max are cut.
func ReadMenuLine(r io.Reader, echo io.Writer, max int) (string, error) {
	var line []byte
	var b [1]byte
	for {
		if _, err := r.Read(b[:]); err != nil {
			return "", err
		}
		switch c := b[0]; {
		case c == '\r' || c == '\n':
			echo.Write([]byte("\r\n"))
			return string(line), nil
		case c == 3 || c == 4:
			return "", io.EOF
		case c == 127 || c == 8:
			if len(line) > 0 {
				line = line[:len(line)-1]
				echo.Write([]byte("\b \b"))
			}
		case c >= 0x20 && c < 0x7f && len(line) < max:
			line = append(line, c)
			echo.Write(b[:])
		}
	}
}

// directTCPIP serves "ssh -J": a channel to an allowed destination.
func (s *Server) directTCPIP(_ *glssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, ctx glssh.Context) {
	st := stateOf(ctx)
	user, ok := st.authenticated()
	if !ok {
		s.refusal(st, "unauthenticated", "jump before the second factor", nil)
		nc.Reject(gossh.Prohibited, "second factor required")
		return
	}
	var d struct {
		DestAddr   string
		DestPort   uint32
		OriginAddr string
		OriginPort uint32
	}
	if err := gossh.Unmarshal(nc.ExtraData(), &d); err != nil || d.DestPort == 0 || d.DestPort > 65535 {
		s.refusal(st, "jump", "malformed direct-tcpip request", nil)
		nc.Reject(gossh.ConnectionFailed, "malformed request")
		return
	}
	// The audit names the canonical destination (or its named target),
	// never the client's spelling; an unparsable one is quoted, cut short.
	route, err := s.policy().Resolve(ctx, user, d.DestAddr, uint16(d.DestPort))
	if err != nil {
		s.m.jumps.WithLabelValues("refused").Inc()
		target := route.Name()
		if target == "" {
			target = "invalid " + strconv.Quote(audit.Truncate(d.DestAddr, 64)) + ":" + strconv.Itoa(int(d.DestPort))
		}
		s.refusal(st, "jump", err.Error(), map[string]any{"target": target})
		nc.Reject(gossh.Prohibited, "destination not allowed")
		return
	}
	targetName := route.Name()
	rec := audit.Record{Type: audit.TypeJump, User: user, Source: addrString(st.source), Method: "direct-tcpip", Target: targetName,
		Fields: map[string]any{"dest": route.Dial}}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	up, err := s.dial(dctx, "tcp", route.Dial)
	cancel()
	if err != nil {
		s.m.jumps.WithLabelValues("unreachable").Inc()
		rec.Result, rec.Reason = audit.ResultFailure, "dial: "+err.Error()
		s.audit(rec)
		nc.Reject(gossh.ConnectionFailed, "target unreachable")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	s.m.jumps.WithLabelValues("opened").Inc()
	s.m.active.WithLabelValues("jump").Inc()
	defer s.m.active.WithLabelValues("jump").Dec()
	start := time.Now()
	s.log.Info("bastion: jump", "user", user, "target", targetName, "dial", route.Dial)

	in, out := relay(ctx, ch, up)
	s.m.jumpBytes.WithLabelValues("in").Add(float64(in))
	s.m.jumpBytes.WithLabelValues("out").Add(float64(out))
	rec.Result = audit.ResultSuccess
	rec.BytesIn, rec.BytesOut = in, out
	rec.Duration = time.Since(start).Seconds()
	s.audit(rec)
}

// relayBufs hold what one read brings. Client to target, x/crypto's
// channel hands over everything already buffered (up to the 2 MiB
// window), so a large buffer turns a bulk jump into fewer, larger writes
// to the target; the other way the channel cuts writes into 32 KiB
// packets anyway.
var (
	relayBufsIn  = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	relayBufsOut = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
)

// writerOnly and readerOnly hide ReadFrom and WriteTo: *net.TCPConn has
// both, and io.CopyBuffer would use them, with a 32 KiB buffer of their
// own instead of ours.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// relay copies both ways until the target closes or the client goes
// away; in is client to target, out is target to client.
func relay(ctx context.Context, ch gossh.Channel, up net.Conn) (in, out int64) {
	done := make(chan struct{})
	go func() {
		buf := relayBufsIn.Get().(*[]byte)
		in, _ = io.CopyBuffer(writerOnly{up}, readerOnly{ch}, *buf)
		relayBufsIn.Put(buf)
		if tc, ok := up.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	stop := context.AfterFunc(ctx, func() { up.Close(); ch.Close() })
	defer stop()
	buf := relayBufsOut.Get().(*[]byte)
	out, _ = io.CopyBuffer(writerOnly{ch}, readerOnly{quickack.Reader(up)}, *buf)
	relayBufsOut.Put(buf)
	ch.CloseWrite()
	ch.Close()
	up.Close()
	<-done
	return in, out
}
