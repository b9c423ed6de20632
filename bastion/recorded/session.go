package recorded

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path"
	"reflect"
	"strings"
	"sync"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

type sessionKind string

const (
	kindShell sessionKind = "shell"
	kindExec  sessionKind = "exec"
	kindSFTP  sessionKind = "sftp"
	kindSCP   sessionKind = "scp"
)

type session struct {
	p          *Proxy
	sess       glssh.Session
	raw        gossh.Channel // the client channel, without gliderlabs' \n rewriting
	user       string
	remoteUser string
	target     Target
	id         string
	start      time.Time
	kind       sessionKind

	pty     glssh.Pty
	hasPty  bool
	winch   <-chan glssh.Window
	in      *userInput
	cast    *recording
	failErr error // set when the recording failed in Refuse mode
	mu      sync.Mutex
}

func (s *session) fields(kv ...any) map[string]any {
	f := map[string]any{
		"session": s.id,
		"user":    s.user,
		"source":  addrString(s.sess.RemoteAddr()),
		"target":  s.target.Name,
		"addr":    s.target.Addr,
	}
	if s.kind != "" {
		f["kind"] = string(s.kind)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i].(string)] = kv[i+1]
	}
	return f
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// refuse tells the user why, audits, and exits 1.
func (s *session) refuse(reason string, err error) error {
	s.p.audit(EventRefused, s.fields("reason", reason))
	s.p.metrics.sessions.WithLabelValues(string(s.kind), "refused").Inc()
	fmt.Fprintf(s.sess.Stderr(), "bastion: %s: %s\r\n", s.target.Name, reason)
	s.sess.Exit(1)
	return err
}

func (s *session) run() error {
	ctx, cancel := context.WithCancel(s.sess.Context())
	defer cancel()

	s.pty, s.winch, s.hasPty = s.sess.Pty()
	s.in = &userInput{r: s.sess}

	switch {
	case s.sess.Subsystem() == "sftp":
		s.kind = kindSFTP
	case s.sess.Subsystem() != "":
		s.kind = "subsystem"
		return s.refuse(fmt.Sprintf("subsystem %q is not relayed", s.sess.Subsystem()), fmt.Errorf("recorded: subsystem %q: %w", s.sess.Subsystem(), ErrUnsupported))
	case s.sess.RawCommand() == "":
		s.kind = kindShell
	case isSCP(s.sess.Command()):
		s.kind = kindSCP
	default:
		s.kind = kindExec
	}

	// The recording (for sftp and scp, the transfer log) starts before the
	// target is dialled, so a full disk refuses the session before anything
	// happens on the target.
	s.p.maybePrune(false)
	rec, err := s.p.startRecording(s)
	if err != nil {
		s.p.log.Error("cannot start recording", "session", s.id, "err", err)
		if s.p.opts.OnRecordFailure == Refuse {
			return s.refuse("session recording is unavailable, refusing to run unrecorded", fmt.Errorf("recorded: session %s: %w: %w", s.id, ErrRecordingUnavailable, err))
		}
		s.p.audit(EventUnrecorded, s.fields("reason", err.Error()))
	}
	s.cast = rec

	client, err := s.dial(ctx)
	if err != nil {
		if s.cast != nil {
			s.cast.abandon()
		}
		if errors.Is(err, ErrHostKey) {
			return s.refuse("target host key is not trusted", err)
		}
		return s.refuse("cannot log in to the target", err)
	}
	defer client.Close()
	return s.relay(ctx, client)
}

// relay opens the session on the target, relays it and ends the client's
// session with the target's exit status.
func (s *session) relay(ctx context.Context, client *gossh.Client) error {
	tch, treqs, err := client.OpenChannel("session", nil)
	if err != nil {
		if s.cast != nil {
			s.cast.abandon()
		}
		return s.refuse("target refused a session", fmt.Errorf("recorded: open session on %s: %w", s.target.Addr, err))
	}
	tchClose := &closeOnce{c: tch}
	defer tchClose.Close()

	for _, kv := range s.sess.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !s.envAllowed(k) {
			continue
		}
		// Targets may refuse env (AcceptEnv); that is their call, not an error.
		tch.SendRequest("env", true, gossh.Marshal(struct{ Name, Value string }{k, v}))
	}
	if s.hasPty {
		ok, err := tch.SendRequest("pty-req", true, gossh.Marshal(ptyRequest{
			Term: s.pty.Term, Columns: uint32(s.pty.Window.Width), Rows: uint32(s.pty.Window.Height),
			Modes: string([]byte{0}), // TTY_OP_END: the client's modes are not known
		}))
		if err != nil || !ok {
			s.abandonCast()
			return s.refuse("target refused a terminal", fmt.Errorf("recorded: pty-req on %s: refused (%v)", s.target.Addr, err))
		}
	}

	var ok bool
	switch s.kind {
	case kindShell:
		ok, err = tch.SendRequest("shell", true, nil)
	case kindExec, kindSCP:
		ok, err = tch.SendRequest("exec", true, gossh.Marshal(struct{ Command string }{s.sess.RawCommand()}))
	case kindSFTP:
		ok, err = tch.SendRequest("subsystem", true, gossh.Marshal(struct{ Name string }{"sftp"}))
	}
	if err != nil || !ok {
		s.abandonCast()
		return s.refuse(fmt.Sprintf("target refused the %s request", s.kind), fmt.Errorf("recorded: %s on %s: refused (%v)", s.kind, s.target.Addr, err))
	}

	var outTap, inTap func([]byte) error
	var finishXfer func()
	switch s.kind {
	case kindShell, kindExec:
		if s.cast != nil {
			outTap = s.cast.w.Output
			if s.p.opts.RecordInput {
				inTap = s.cast.w.Input
			}
		}
	case kindSFTP:
		x := newSFTPWatcher(func(ev TransferEvent) { s.transfer("sftp", ev) })
		outTap, inTap = x.FromServer, x.FromClient
		finishXfer = x.Close
	case kindSCP:
		x := newSCPWatcher(s.sess.Command(), func(ev TransferEvent) { s.transfer("scp", ev) })
		outTap, inTap = x.FromServer, x.FromClient
		finishXfer = x.Close
	}

	s.p.audit(EventStart, s.startFields())
	s.p.metrics.live.Inc()
	defer s.p.metrics.live.Dec()

	// A recording that fails midway ends the session under Refuse.
	if s.cast != nil {
		s.cast.setOnFail(func(err error) {
			s.p.metrics.failures.Inc()
			if s.p.opts.OnRecordFailure == Refuse {
				s.p.audit(EventRecordingFailed, s.fields("error", err.Error(), "action", "terminated"))
				s.mu.Lock()
				s.failErr = err
				s.mu.Unlock()
				fmt.Fprintf(s.sess.Stderr(), "\r\nbastion: session recording failed; session terminated\r\n")
				tchClose.Close()
				return
			}
			s.p.audit(EventRecordingFailed, s.fields("error", err.Error(), "action", "continued unrecorded"))
		})
	}
	tapOK := func(tap func([]byte) error) func([]byte) bool {
		if tap == nil {
			return nil
		}
		return func(p []byte) bool {
			if err := tap(p); err != nil && s.kind != kindSFTP && s.kind != kindSCP {
				return s.p.opts.OnRecordFailure != Refuse
			}
			return true
		}
	}
	out, in := tapOK(outTap), tapOK(inTap)

	// Requests from the client: window-change, signal, break.
	go s.forwardClientRequests(ctx, tch)

	// Exit status and signal from the target.
	exitCh := make(chan *gossh.Request, 1)
	go func() {
		var sent bool
		for r := range treqs {
			switch r.Type {
			case "exit-status", "exit-signal":
				if !sent {
					exitCh <- r
					sent = true
				}
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
		if !sent {
			close(exitCh)
		}
	}()

	// Client to target.
	go func() {
		copyTapped(tch, s.in, in)
		tch.CloseWrite()
	}()

	// Target to client.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		copyTapped(s.raw, tch, out)
	}()
	go func() {
		defer wg.Done()
		copyTapped(s.raw.Stderr(), tch.Stderr(), out)
	}()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done(): // the client went away
			tchClose.Close()
		case <-done:
		}
	}()
	wg.Wait()
	close(done)

	// The exit status comes with or just after the end of output; a client
	// that went away does not wait for a target that never sends one.
	var exit *gossh.Request
	select {
	case exit = <-exitCh:
	case <-ctx.Done():
	}
	if finishXfer != nil {
		finishXfer()
	}
	end := s.endFields(exit)
	s.p.audit(EventEnd, end)

	s.mu.Lock()
	failErr := s.failErr
	s.mu.Unlock()
	result := "ok"
	if failErr != nil {
		result = "recording_failed"
	}
	s.p.metrics.sessions.WithLabelValues(string(s.kind), result).Inc()

	switch {
	case failErr != nil:
		s.sess.Exit(1)
		return fmt.Errorf("recorded: session %s: %w: %w", s.id, ErrRecordingUnavailable, failErr)
	case exit == nil:
		// No exit status from the target (connection lost): 255, like ssh.
		s.sess.Exit(255)
	case exit.Type == "exit-status":
		var st struct{ Status uint32 }
		gossh.Unmarshal(exit.Payload, &st)
		s.sess.Exit(int(st.Status))
	default:
		s.raw.SendRequest("exit-signal", false, exit.Payload)
		s.sess.Close()
	}
	return nil
}

func (s *session) abandonCast() {
	if s.cast != nil {
		s.cast.abandon()
	}
}

func (s *session) startFields() map[string]any {
	f := s.fields("remote_user", s.remoteUser, "pty", s.hasPty)
	if s.kind == kindExec || s.kind == kindSCP {
		f["command"] = s.sess.RawCommand()
	}
	if s.cast != nil {
		f["file"] = s.cast.path
	}
	return f
}

func (s *session) endFields(exit *gossh.Request) map[string]any {
	f := s.startFields()
	f["duration_ms"] = s.p.now().Sub(s.start).Milliseconds()
	if exit != nil {
		switch exit.Type {
		case "exit-status":
			var st struct{ Status uint32 }
			gossh.Unmarshal(exit.Payload, &st)
			f["exit_status"] = st.Status
		case "exit-signal":
			var sig struct {
				Signal     string
				CoreDumped bool
				Msg, Lang  string
			}
			gossh.Unmarshal(exit.Payload, &sig)
			f["exit_signal"] = sig.Signal
		}
	}
	if s.cast != nil {
		sum, size, events, err := s.cast.finish()
		f["sha256"] = sum
		f["bytes"] = size
		f["events"] = events
		if err != nil {
			f["recording_error"] = err.Error()
		}
		s.p.metrics.bytes.Add(float64(size))
	}
	return f
}

func (s *session) transfer(proto string, ev TransferEvent) {
	f := s.fields("protocol", proto, "op", ev.Op, "path", ev.Path)
	if ev.Target != "" {
		f["new_path"] = ev.Target
	}
	if ev.Bytes > 0 || ev.Op == "upload" || ev.Op == "download" {
		f["bytes"] = ev.Bytes
	}
	if ev.Read > 0 {
		f["bytes_read"] = ev.Read
	}
	if ev.Written > 0 {
		f["bytes_written"] = ev.Written
	}
	if ev.Status != "" {
		f["status"] = ev.Status
	}
	s.p.audit(EventTransfer, f)
	if s.cast != nil {
		// A failed write reaches the recording's onFail, as for a screen
		// recording.
		s.cast.w.Mark(transferLabel(ev))
	}
}

func (s *session) envAllowed(k string) bool {
	for _, a := range s.p.opts.EnvAllow {
		if prefix, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(k, prefix) {
				return true
			}
		} else if k == a {
			return true
		}
	}
	return false
}

type ptyRequest struct {
	Term                         string
	Columns, Rows, Width, Height uint32
	Modes                        string
}

func (s *session) forwardClientRequests(ctx context.Context, tch gossh.Channel) {
	sigs := make(chan glssh.Signal, 8)
	s.sess.Signals(sigs)
	defer s.sess.Signals(nil)
	brk := make(chan bool, 1)
	s.sess.Break(brk)
	defer s.sess.Break(nil)
	winch := s.winch
	if !s.hasPty {
		winch = nil
	}
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case w, ok := <-winch:
			if !ok {
				winch = nil
				continue
			}
			if first && w == s.pty.Window {
				first = false // the size already sent in pty-req
				continue
			}
			first = false
			tch.SendRequest("window-change", false, gossh.Marshal(struct{ Columns, Rows, Width, Height uint32 }{uint32(w.Width), uint32(w.Height), 0, 0}))
			if s.cast != nil && !s.cast.transfers {
				s.cast.w.Resize(w.Width, w.Height)
			}
		case sig := <-sigs:
			tch.SendRequest("signal", false, gossh.Marshal(struct{ Signal string }{string(sig)}))
		case <-brk:
			tch.SendRequest("break", false, gossh.Marshal(struct{ Ms uint32 }{0}))
		}
	}
}

// copyTapped copies src to dst, showing every chunk to tap first; a tap
// returning false stops the copy (the recording failed and the policy says
// stop), so nothing reaches dst unrecorded.
func copyTapped(dst io.Writer, src io.Reader, tap func([]byte) bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if tap != nil && !tap(buf[:n]) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// rawChannel returns the SSH channel under a gliderlabs session. The
// session's own Write turns "\n" into "\r\n" when a pty was requested,
// which would corrupt the target's terminal output (full-screen programs
// emit bare line feeds); the embedded channel writes bytes as they are.
func rawChannel(sess glssh.Session) gossh.Channel {
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

// userInput reads the client's stdin, with room to push back bytes typed
// ahead of a keyboard-interactive answer.
type userInput struct {
	r    io.Reader
	head []byte
}

func (u *userInput) Read(p []byte) (int, error) {
	if len(u.head) > 0 {
		n := copy(p, u.head)
		u.head = u.head[n:]
		return n, nil
	}
	return u.r.Read(p)
}

// isSCP reports whether argv runs scp in server mode (-t or -f).
func isSCP(argv []string) bool {
	if len(argv) < 2 || path.Base(argv[0]) != "scp" {
		return false
	}
	for _, a := range argv[1:] {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.ContainsAny(a, "tf") {
			return true
		}
	}
	return false
}

// recording is one asciicast file being written: a screen recording, or
// the transfer log of an sftp or scp session.
type recording struct {
	path      string
	transfers bool
	f         *os.File
	hw        *hashingWriter
	w         *asciicast.Writer
	lock      *os.File
	onFail    func(error)
	mu        sync.Mutex
}

type hashingWriter struct {
	f *os.File
	h hash.Hash
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.f.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

func (hw *hashingWriter) Sync() error { return hw.f.Sync() }

// startRecording creates ID.live (locked) and ID.cast, or ID.transfers.cast
// for sftp and scp, with its header.
func (p *Proxy) startRecording(s *session) (*recording, error) {
	dir := p.opts.Dir
	lock, err := createLive(livePath(dir, s.id))
	if err != nil {
		return nil, err
	}
	transfers := s.kind == kindSFTP || s.kind == kindSCP
	path := CastPath(dir, s.id)
	if transfers {
		path = TransfersPath(dir, s.id)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		removeLive(lock)
		return nil, fmt.Errorf("create recording: %w", err)
	}
	rec := &recording{path: path, transfers: transfers, f: f, lock: lock, hw: &hashingWriter{f: f, h: sha256.New()}}
	env := map[string]string{}
	for _, kv := range s.sess.Environ() {
		if k, v, _ := strings.Cut(kv, "="); s.envAllowed(k) {
			env[k] = v
		}
	}
	if s.hasPty && s.pty.Term != "" {
		env["TERM"] = s.pty.Term
	}
	h := asciicast.Header{
		Width: 80, Height: 24, Timestamp: s.start.Unix(),
		Title:  s.user + "@" + s.target.Name,
		Env:    env,
		User:   s.user,
		Source: addrString(s.sess.RemoteAddr()),
		Target: s.target.Name, TargetAddr: s.target.Addr, RemoteUser: s.remoteUser,
		SessionID: s.id, Kind: string(s.kind),
	}
	if s.hasPty {
		h.Width, h.Height = s.pty.Window.Width, s.pty.Window.Height
	}
	if s.kind == kindExec || s.kind == kindSCP {
		h.Command = s.sess.RawCommand()
	}
	w, err := asciicast.NewWriter(rec.hw, h, asciicast.WriterOptions{
		FlushInterval: p.opts.FlushInterval,
		NoSync:        p.opts.NoSync,
		Now:           p.now,
		OnError: func(err error) {
			rec.mu.Lock()
			fail := rec.onFail
			rec.mu.Unlock()
			if fail != nil {
				fail(err)
			}
		},
	})
	if err != nil {
		f.Close()
		os.Remove(path)
		removeLive(lock)
		return nil, err
	}
	rec.w = w
	return rec, nil
}

func (r *recording) setOnFail(f func(error)) {
	r.mu.Lock()
	r.onFail = f
	r.mu.Unlock()
}

// abandon removes a recording of a session that never reached the target.
func (r *recording) abandon() {
	r.w.Close()
	r.f.Close()
	os.Remove(r.path)
	removeLive(r.lock)
}

// finish closes the recording and returns its SHA-256, size and events.
func (r *recording) finish() (sum string, size, events int64, err error) {
	if r.transfers {
		r.w.Mark(transferEndMark)
	}
	err = r.w.Close()
	if cerr := r.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	removeLive(r.lock)
	size, events = r.w.Stats()
	return hex.EncodeToString(r.hw.h.Sum(nil)), size, events, err
}
