// Package asciicast writes and reads asciinema's asciicast v2 files, the
// format in which the bastion records terminal sessions.
//
// # File layout
//
// An asciicast v2 file is JSON Lines: one [Header] object, then one event per
// line, each a three-element array [time, code, data] where time is seconds
// since the header's timestamp, code is "o" (output), "i" (input), "r"
// (resize, data "COLSxROWS") or "m" (marker), and data is a string.
// See https://docs.asciinema.org/manual/asciicast/v2/.
//
// # Crash safety
//
// [Writer] buffers a bounded number of bytes and only ever hands whole lines
// to the file, each flush in a single write call: a process killed at any
// instant leaves a file whose every line parses. A background ticker flushes
// (and, unless disabled, fsyncs) at least every [DefaultFlushInterval], so a
// crash loses at most that much of the session.
//
// # Reading
//
// [Reader] parses files written by this package or by asciinema itself and
// tolerates a torn last line, which is what a file being written looks like
// to a concurrent reader; [Play] replays events in real time.
package asciicast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Version is the asciicast format version this package writes.
const Version = 2

// Event codes.
const (
	Output = "o"
	Input  = "i"
	Resize = "r"
	Marker = "m"
)

// DefaultFlushInterval is how often a [Writer] flushes buffered events when
// [WriterOptions.FlushInterval] is zero.
const DefaultFlushInterval = 500 * time.Millisecond

// DefaultBufferSize bounds the bytes a [Writer] holds before writing them out.
const DefaultBufferSize = 32 << 10

// Header is the first line of an asciicast v2 file. Fields asciinema defines
// come first; the rest are Rampart's own, which asciinema ignores.
type Header struct {
	// Version is always 2.
	Version int `json:"version"`
	// Width and Height are the terminal's initial columns and rows.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Timestamp is the session start, Unix seconds.
	Timestamp int64 `json:"timestamp"`
	// IdleTimeLimit, when set, caps pauses during playback (seconds).
	IdleTimeLimit float64 `json:"idle_time_limit,omitempty"`
	// Command is the exec command line, empty for an interactive shell.
	Command string `json:"command,omitempty"`
	// Title is a human-readable summary ("alice@db1").
	Title string `json:"title,omitempty"`
	// Env holds the allowlisted environment the client sent (TERM, LANG...).
	Env map[string]string `json:"env,omitempty"`

	// User is the bastion user who ran the session.
	User string `json:"user,omitempty"`
	// Source is the client's address (host:port).
	Source string `json:"source,omitempty"`
	// Target is the target's configured name.
	Target string `json:"target,omitempty"`
	// TargetAddr is the host:port the bastion dialled.
	TargetAddr string `json:"target_addr,omitempty"`
	// RemoteUser is the login used on the target.
	RemoteUser string `json:"remote_user,omitempty"`
	// SessionID names the session in the audit log and in `bastion watch`.
	SessionID string `json:"session_id,omitempty"`
	// Kind is the bastion's session kind: "shell", "exec", or "sftp" and
	// "scp" for a file-transfer log whose markers are the transfers.
	Kind string `json:"kind,omitempty"`
}

// Event is one recorded line after the header.
type Event struct {
	// Time is the offset from the start of the recording.
	Time time.Duration
	// Code is [Output], [Input], [Resize] or [Marker].
	Code string
	// Data is the event's payload: terminal bytes, or "COLSxROWS" for a resize.
	Data string
}

// WriterOptions tunes a [Writer]. The zero value is the documented default.
type WriterOptions struct {
	// BufferSize bounds buffered bytes; 0 means [DefaultBufferSize].
	BufferSize int
	// FlushInterval is the longest an event waits in memory; 0 means
	// [DefaultFlushInterval], negative disables the background flusher.
	FlushInterval time.Duration
	// NoSync skips the fsync after each periodic flush.
	NoSync bool
	// OnError is called once, from whichever goroutine hit it, with the
	// first write error; every later write returns it too.
	OnError func(error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Syncer is implemented by files; a [Writer] syncs destinations that have it.
type Syncer interface{ Sync() error }

// Writer appends events to an asciicast v2 stream. It is safe for
// concurrent use. Data is split so that a multi-byte UTF-8 character cut
// across two writes is recorded whole; bytes that are not UTF-8 are recorded
// as U+FFFD, since asciicast data is a JSON string.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	buf     []byte
	limit   int
	start   time.Time
	now     func() time.Time
	err     error
	onError func(error)
	carry   map[string][]byte
	sync    bool
	dirty   bool
	closed  bool
	bytes   int64
	events  int64
	stop    chan struct{}
	stopped chan struct{}
}

// ErrClosed is returned by writes after [Writer.Close].
var ErrClosed = errors.New("asciicast: writer closed")

// NewWriter writes h (Version forced to 2; Timestamp set from the clock when
// zero) to w and returns a Writer for the events. The header is written
// through at once, so an unwritable destination fails here.
func NewWriter(w io.Writer, h Header, o WriterOptions) (*Writer, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	h.Version = Version
	if h.Timestamp == 0 {
		h.Timestamp = start.Unix()
	}
	line, err := marshalHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(line); err != nil {
		return nil, fmt.Errorf("asciicast: write header: %w", err)
	}
	if s, ok := w.(Syncer); ok && !o.NoSync {
		if err := s.Sync(); err != nil {
			return nil, fmt.Errorf("asciicast: sync header: %w", err)
		}
	}
	limit := o.BufferSize
	if limit <= 0 {
		limit = DefaultBufferSize
	}
	aw := &Writer{
		w: w, limit: limit, start: start, now: now, onError: o.OnError,
		carry: map[string][]byte{}, sync: !o.NoSync,
		buf: make([]byte, 0, 4096), bytes: int64(len(line)),
	}
	interval := o.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	if interval > 0 {
		aw.stop = make(chan struct{})
		aw.stopped = make(chan struct{})
		go aw.flusher(interval)
	}
	return aw, nil
}

func (w *Writer) flusher(interval time.Duration) {
	defer close(w.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if w.dirty || len(w.buf) > 0 {
				w.flushLocked(true)
			}
			w.mu.Unlock()
		}
	}
}

// Output records terminal output.
func (w *Writer) Output(p []byte) error { return w.event(Output, p) }

// Input records keystrokes.
func (w *Writer) Input(p []byte) error { return w.event(Input, p) }

// Resize records a terminal size change.
func (w *Writer) Resize(cols, rows int) error {
	return w.event(Resize, []byte(strconv.Itoa(cols)+"x"+strconv.Itoa(rows)))
}

// Mark records a marker with a label (asciinema shows markers as chapters).
func (w *Writer) Mark(label string) error { return w.event(Marker, []byte(label)) }

func (w *Writer) event(code string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	if code == Output || code == Input {
		if c := w.carry[code]; len(c) > 0 {
			p = append(c, p...)
			w.carry[code] = nil
		}
		if n := incompleteSuffix(p); n > 0 {
			w.carry[code] = append(w.carry[code][:0], p[len(p)-n:]...)
			p = p[:len(p)-n]
		}
	}
	if len(p) == 0 && (code == Output || code == Input) {
		return nil
	}
	mark := len(w.buf)
	w.buf = appendEvent(w.buf, w.now().Sub(w.start), code, p)
	w.events++
	if len(w.buf) >= w.limit {
		if mark > 0 && len(w.buf)-mark < w.limit {
			// Write the older lines, keep the new one buffered: output
			// stays in whole lines and the buffer bounded.
			w.writeLocked(w.buf[:mark])
			w.buf = append(w.buf[:0], w.buf[mark:]...)
		} else {
			w.writeLocked(w.buf)
			w.buf = w.buf[:0]
		}
		if cap(w.buf) > 2*w.limit {
			w.buf = append(make([]byte, 0, w.limit), w.buf...)
		}
	}
	return w.err
}

func (w *Writer) writeLocked(p []byte) {
	if w.err != nil || len(p) == 0 {
		return
	}
	n, err := w.w.Write(p)
	w.bytes += int64(n)
	w.dirty = true
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.failLocked(fmt.Errorf("asciicast: write: %w", err))
	}
}

func (w *Writer) failLocked(err error) {
	if w.err != nil {
		return
	}
	w.err = err
	if w.onError != nil {
		go w.onError(err)
	}
}

func (w *Writer) flushLocked(sync bool) {
	w.writeLocked(w.buf)
	w.buf = w.buf[:0]
	if sync && w.sync && w.dirty && w.err == nil {
		if s, ok := w.w.(Syncer); ok {
			if err := s.Sync(); err != nil {
				w.failLocked(fmt.Errorf("asciicast: sync: %w", err))
			}
		}
	}
	if w.err == nil {
		w.dirty = false
	}
}

// Flush writes buffered events out (and syncs, unless disabled).
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.flushLocked(true)
	return w.err
}

// Err returns the first write error, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stats returns the bytes written to the destination so far (header
// included, buffered bytes not) and the number of events recorded.
func (w *Writer) Stats() (bytes, events int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes, w.events
}

// Close records any held partial character, flushes and stops the
// background flusher. It does not close the destination.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	for _, code := range []string{Output, Input} {
		if c := w.carry[code]; len(c) > 0 && w.err == nil {
			w.buf = appendEvent(w.buf, w.now().Sub(w.start), code, c)
			w.events++
			w.carry[code] = nil
		}
	}
	w.closed = true
	if w.err == nil {
		w.flushLocked(true)
	}
	err := w.err
	w.mu.Unlock()
	if w.stop != nil {
		close(w.stop)
		<-w.stopped
	}
	return err
}

// incompleteSuffix returns how many trailing bytes of p start a UTF-8
// sequence that is not complete yet (0 to 3).
func incompleteSuffix(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		b := p[len(p)-i]
		if b < 0x80 {
			return 0
		}
		if b >= 0xC0 { // leading byte
			if utf8.FullRune(p[len(p)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

func appendEvent(buf []byte, t time.Duration, code string, p []byte) []byte {
	buf = append(buf, '[')
	buf = strconv.AppendFloat(buf, t.Seconds(), 'f', 6, 64)
	buf = append(buf, ", \""...)
	buf = append(buf, code...)
	buf = append(buf, "\", "...)
	buf = appendJSONString(buf, p)
	return append(buf, "]\n"...)
}

const hexDigits = "0123456789abcdef"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainASCII8 reports whether the eight bytes in x need no JSON escaping:
// all ASCII, none below 0x20, none a quote or backslash.
func plainASCII8(x uint64) bool {
	below20 := (x - ones*0x20) & ^x & highs
	return (x&highs)|below20|zeroByte(x^(ones*'"'))|zeroByte(x^(ones*'\\')) == 0
}

// zeroByte is non-zero iff one of the eight bytes of v is zero.
func zeroByte(v uint64) uint64 { return (v - ones) & ^v & highs }

// appendJSONString appends p as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(buf []byte, p []byte) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(p); {
		// Eight plain ASCII bytes at a time: the common case for terminal
		// output, and this loop runs over every byte of a session.
		if i+8 <= len(p) && plainASCII8(binary.LittleEndian.Uint64(p[i:])) {
			i += 8
			continue
		}
		c := p[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, p[start:i]...)
			switch c {
			case '"':
				buf = append(buf, '\\', '"')
			case '\\':
				buf = append(buf, '\\', '\\')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, p[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, p[start:]...)
	return append(buf, '"')
}
