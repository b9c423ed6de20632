package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Reasons a TLS handshake was refused, as metric labels.
const (
	HandshakeNoCertificate  = "no_certificate"
	HandshakeUnknownCA      = "unknown_ca"
	HandshakeExpired        = "expired"
	HandshakeRevoked        = "revoked"
	HandshakeBadCertificate = "bad_certificate"
	HandshakeOther          = "other" // not TLS, EOF, timeouts: scanners and health checks
)

// classifyHandshake names why crypto/tls refused a client, from the error
// text net/http logs.
func classifyHandshake(msg string) string {
	switch {
	case strings.Contains(msg, "didn't provide a certificate"):
		return HandshakeNoCertificate
	case strings.Contains(msg, "unknown authority"):
		return HandshakeUnknownCA
	case strings.Contains(msg, "expired or is not yet valid"):
		return HandshakeExpired
	case strings.Contains(msg, "revoked"):
		return HandshakeRevoked
	case strings.Contains(msg, "certificate"):
		return HandshakeBadCertificate
	}
	return HandshakeOther
}

// handshakeLog receives net/http's error log. Refused handshakes are
// counted by reason; certificate refusals are logged at warning with the
// remote address, at most once a minute per address and 10 lines per 10
// seconds in all (the rest counted as suppressed in the next line); other
// handshake failures and everything else go to debug.
type handshakeLog struct {
	log   *slog.Logger
	count func(reason string) // may be nil
	now   func() time.Time

	mu         sync.Mutex
	perAddr    map[string]time.Time
	window     time.Time
	inWindow   int
	suppressed int
}

func newHandshakeLog(log *slog.Logger, count func(string)) *handshakeLog {
	return &handshakeLog{log: log, count: count, now: time.Now, perAddr: map[string]time.Time{}}
}

const handshakePrefix = "http: TLS handshake error from "

func (h *handshakeLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	rest, ok := strings.CutPrefix(line, handshakePrefix)
	if !ok {
		h.log.Debug("blocklistd: http", "msg", line)
		return len(p), nil
	}
	remote, msg, _ := strings.Cut(rest, ": ")
	reason := classifyHandshake(msg)
	if h.count != nil {
		h.count(reason)
	}
	if reason == HandshakeOther {
		h.log.Debug("blocklistd: TLS handshake failed", "remote", remote, "err", msg)
		return len(p), nil
	}
	if suppressed, ok := h.allow(remote); ok {
		h.log.Warn("blocklistd: TLS handshake refused", "remote", remote, "reason", reason, "err", msg, "suppressed", suppressed)
	}
	return len(p), nil
}

// allow reports whether a line about remote may be logged now, and how
// many were suppressed since the last one logged.
func (h *handshakeLog) allow(remote string) (int, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Sub(h.window) >= 10*time.Second {
		h.window, h.inWindow = now, 0
	}
	if last, ok := h.perAddr[host]; (ok && now.Sub(last) < time.Minute) || h.inWindow >= 10 {
		h.suppressed++
		return 0, false
	}
	if len(h.perAddr) >= 4096 {
		for a, t := range h.perAddr {
			if now.Sub(t) >= time.Minute {
				delete(h.perAddr, a)
			}
		}
	}
	h.perAddr[host] = now
	h.inWindow++
	n := h.suppressed
	h.suppressed = 0
	return n, true
}
