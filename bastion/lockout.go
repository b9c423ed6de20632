package bastion

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/guard"
)

// Who counts against whom (bastion/guard holds the counts):
//   - a connection that offered keys and never finished both factors is
//     one failure of its source, never of the user it named: anyone can
//     name a user, so a wrong key must not lock that user out;
//   - a wrong second factor after the user's own valid key is a failure of
//     the source and of the user;
//   - a login while locked out is refused with a keyboard-interactive
//     message saying so, and is not counted again.

// lockEvent turns a guard lock or unlock into an audit record and a metric.
func (s *Server) lockEvent(ev guard.Event) {
	event := "unlock"
	rec := audit.Record{Type: audit.TypeAuth, User: ev.User, Method: "unlock", Reason: ev.Kind + " lockout ended",
		Fields: map[string]any{"kind": ev.Kind}}
	if ev.Locked {
		event = "lock"
		rec.Method = "lock"
		rec.Result = audit.ResultFailure
		rec.Reason = fmt.Sprintf("%s locked out after %d failures", ev.Kind, ev.Failures)
		rec.Fields["until"] = ev.Until.UTC().Format(time.RFC3339)
		rec.Fields["failures"] = ev.Failures
	}
	if ev.Kind == guard.KindSource {
		rec.Source = addrString(ev.Source)
	}
	s.m.lockouts.WithLabelValues(ev.Kind, event).Inc()
	s.audit(rec)
}

// sweepLockouts records the end of lockouts nobody retried, so every lock
// has its unlock in the audit log.
func (s *Server) sweepLockouts(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.opts.Guard.Sweep()
		}
	}
}

// lockMessage is what a locked-out user or source reads: which of the two
// is locked and until when, never which factor failed.
func lockMessage(l guard.Lock, now time.Time) string {
	mins := int(l.Until.Sub(now).Round(time.Minute) / time.Minute)
	wait := fmt.Sprintf("about %d minutes", max(mins, 1))
	if mins <= 1 {
		wait = "about a minute"
	}
	who := "This account is locked"
	if l.Kind == guard.KindSource {
		who = "Your address is locked"
	}
	return who + "\nafter too many failed logins.\nTry again in " + wait + ",\nor ask an administrator.\n"
}

// lockedOut answers a login while src or the user is locked out: the
// message as a keyboard-interactive instruction, an audit record, and no
// new failure.
func (s *Server) lockedOut(client gossh.KeyboardInteractiveChallenge, rec audit.Record, l guard.Lock) (*gossh.Permissions, error) {
	client("", lockMessage(l, time.Now()), nil, nil)
	rec.Method, rec.Result, rec.Reason = "keyboard-interactive", audit.ResultFailure, l.Kind+" locked out after repeated failures"
	s.m.auth.WithLabelValues("lockout", audit.ResultFailure).Inc()
	s.audit(rec)
	return nil, errSecondFactor
}

// lockedSourceLogin is the only method offered to a connection from a
// locked-out source (its keys are refused): keyboard-interactive, which
// tells it so. Its audit records are rate-limited per source.
func (s *Server) lockedSourceLogin(st *connState) func(gossh.ConnMetadata, gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
	return func(conn gossh.ConnMetadata, client gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
		st.mu.Lock()
		src := st.source
		st.mu.Unlock()
		l, locked := s.opts.Guard.Lockout(src, "")
		if !locked {
			return nil, errSecondFactor // the lock ended: reconnect with a key
		}
		client("", lockMessage(l, time.Now()), nil, nil)
		s.m.auth.WithLabelValues("lockout", audit.ResultFailure).Inc()
		if s.firstLockNotice(src) {
			user, _ := splitUser(conn.User())
			s.audit(audit.Record{Type: audit.TypeAuth, User: clip(user, 64), Source: addrString(src), Method: "keyboard-interactive",
				Result: audit.ResultFailure, Reason: "source locked out after repeated failures (told so; further attempts from this source are counted in metrics, audited at most once a minute)"})
		}
		return nil, errSecondFactor
	}
}

// notes rate-limits audit records that an unauthenticated peer can cause
// at will (drops, lockout notices): one per kind and source a minute.
type notes struct {
	mu   sync.Mutex
	last map[noteKey]time.Time
}

type noteKey struct {
	kind string
	src  netip.Addr
}

func (n *notes) first(kind string, src netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	k := noteKey{kind, src}
	if last, ok := n.last[k]; ok && now.Sub(last) < time.Minute {
		return false
	}
	if n.last == nil || len(n.last) > 10000 {
		n.last = map[noteKey]time.Time{}
	}
	n.last[k] = now
	return true
}

// clip cuts an unauthenticated peer's string to n bytes for the audit log.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
