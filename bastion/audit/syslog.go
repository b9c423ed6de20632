package audit

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// SyslogConfig says where to forward audit records.
type SyslogConfig struct {
	// Addr is the collector's host:port (RFC 5425 uses 6514).
	Addr string
	// TLS is the client configuration; it must verify the collector.
	TLS *tls.Config
	// AppName is the RFC 5424 APP-NAME (default "bastion").
	AppName string
	// Hostname is the RFC 5424 HOSTNAME (default os.Hostname()).
	Hostname string
	// Queue is how many records may wait for the collector (default 4096);
	// when full, new records are dropped and counted.
	Queue  int
	Logger *slog.Logger
}

// SyslogForwarder sends every record as an RFC 5424 message over TCP+TLS
// with RFC 5425 octet-counting framing, reconnecting with backoff. It never
// blocks the audit log: the file stays the source of truth.
type SyslogForwarder struct {
	cfg     SyslogConfig
	q       chan []byte
	dropped atomic.Int64
	done    chan struct{}
}

// NewSyslogForwarder starts the sender; it stops when ctx ends.
func NewSyslogForwarder(ctx context.Context, cfg SyslogConfig) *SyslogForwarder {
	if cfg.AppName == "" {
		cfg.AppName = "bastion"
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
		if cfg.Hostname == "" {
			cfg.Hostname = "-"
		}
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &SyslogForwarder{cfg: cfg, q: make(chan []byte, cfg.Queue), done: make(chan struct{})}
	go f.run(ctx)
	return f
}

// Send queues line; it implements [Sink].
func (f *SyslogForwarder) Send(line []byte) {
	msg := FormatRFC5424(time.Now(), f.cfg.Hostname, f.cfg.AppName, line)
	select {
	case f.q <- msg:
	default:
		f.dropped.Add(1)
	}
}

// Dropped is how many records were not forwarded because the queue was full.
func (f *SyslogForwarder) Dropped() int64 { return f.dropped.Load() }

// Done is closed when the sender has stopped.
func (f *SyslogForwarder) Done() <-chan struct{} { return f.done }

// FormatRFC5424 renders one message framed for RFC 5425 (octet counting):
// facility authpriv (10), severity notice (5), MSGID "audit".
func FormatRFC5424(t time.Time, host, app string, line []byte) []byte {
	const pri = 10*8 + 5
	msg := fmt.Appendf(nil, "<%d>1 %s %s %s %d audit - ", pri, t.UTC().Format("2006-01-02T15:04:05.000000Z"), host, app, os.Getpid())
	msg = append(msg, line...)
	return append(strconv.AppendInt(nil, int64(len(msg)), 10), append([]byte{' '}, msg...)...)
}

func (f *SyslogForwarder) run(ctx context.Context) {
	defer close(f.done)
	backoff := time.Second
	var pending []byte
	for ctx.Err() == nil {
		d := tls.Dialer{Config: f.cfg.TLS, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", f.cfg.Addr)
		if err != nil {
			f.cfg.Logger.Warn("audit: syslog collector unreachable", "addr", f.cfg.Addr, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		for {
			if pending == nil {
				select {
				case <-ctx.Done():
					conn.Close()
					return
				case pending = <-f.q:
				}
			}
			conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Write(pending); err != nil {
				f.cfg.Logger.Warn("audit: syslog write failed, reconnecting", "err", err)
				conn.Close()
				break
			}
			pending = nil
		}
	}
}
