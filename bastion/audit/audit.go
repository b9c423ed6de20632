// Package audit writes the bastion's tamper-evident audit trail: a JSON
// Lines file where every record carries the hash of the one before it, so
// editing, inserting or deleting a record in the middle breaks the chain
// and [Verify] names the first line that no longer fits.
//
// # Record format
//
// Each line is one JSON object. Its last member is "hash": the lowercase
// hex SHA-256 of the line's bytes with that member removed (that is, of the
// object as it was before ",\"hash\":...\"" was appended), and its "prev"
// member is the hash of the previous line (64 zeros for the first). The
// field names are shared with the blocklist agent's log detector:
//
//	{"time":"2026-11-22T04:13:08.123Z","type":"auth","user":"alice","source":"192.0.2.7",
//	 "method":"publickey","result":"failure","reason":"unknown key","prev":"…","hash":"…"}
//
// Truncating the file's tail cannot be seen from the chain alone; forward
// the records to syslog (see [SyslogForwarder]) to keep a copy elsewhere.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"
)

// Record types.
const (
	TypeAuth    = "auth"
	TypeJump    = "jump"
	TypeRefusal = "refusal"
	TypeSession = "session"
)

// Results.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Genesis is the "prev" of the first record of a log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audit event. Prev and Hash are filled in by [Log.Append].
type Record struct {
	Time     time.Time      `json:"time"`
	Type     string         `json:"type"`
	User     string         `json:"user,omitempty"`
	Source   string         `json:"source,omitempty"`
	Method   string         `json:"method,omitempty"`
	Result   string         `json:"result,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Target   string         `json:"target,omitempty"`
	Session  string         `json:"session,omitempty"`
	BytesIn  int64          `json:"bytes_in,omitempty"`  // from the client towards the target
	BytesOut int64          `json:"bytes_out,omitempty"` // from the target towards the client
	Duration float64        `json:"duration_s,omitempty"`
	Fields   map[string]any `json:"fields,omitempty"`
	Prev     string         `json:"prev"`
	Hash     string         `json:"-"`
}

// Sink receives every record after it is written, as the exact line in the
// file (without the newline). Sinks must not block for long.
type Sink interface {
	Send(line []byte)
}

// Log appends records to one file. It is safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	last  string
	now   func() time.Time
	sinks []Sink
}

// Options tune [Open].
type Options struct {
	// Now replaces time.Now for record times (tests).
	Now func() time.Time
	// Sinks receive a copy of every line (syslog forwarding).
	Sinks []Sink
}

// Open opens (or creates, mode 0640 less the umask) the log at path and
// continues its chain from the last complete line. Group read lets
// blocklist-agent's bastion detector (in the bastion's group) follow it.
func Open(path string, opts Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	last, err := lastHash(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	l := &Log{f: f, w: bufio.NewWriter(f), last: last, now: opts.Now, sinks: opts.Sinks}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// lastHash reads the hash of the last line of f (Genesis for an empty file).
func lastHash(f *os.File) (string, error) {
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	if size == 0 {
		return Genesis, nil
	}
	const chunk = 64 << 10
	off := max(size-chunk, 0)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	buf = bytes.TrimRight(buf, "\n")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	} else if off > 0 {
		return "", errors.New("last line longer than 64 KiB")
	}
	m := hashSuffix.FindSubmatch(buf)
	if m == nil {
		return "", errors.New("last line has no hash: the log is damaged, run `bastion audit verify`")
	}
	return string(m[1]), nil
}

// Append writes rec, chained to the previous record, and flushes it to the
// file before returning. A zero Time is set to now. Strings are cut so
// that the line stays within [MaxLine] bytes (see [Truncate]).
func (l *Log) Append(rec Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit: log is closed")
	}
	if rec.Time.IsZero() {
		rec.Time = l.now()
	}
	rec.Time = rec.Time.UTC()
	rec.Prev = l.last
	line, hash, err := sealBounded(rec)
	if err != nil {
		return err
	}
	l.w.Write(line)
	l.w.WriteByte('\n')
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	l.last = hash
	for _, s := range l.sinks {
		s.Send(line)
	}
	return nil
}

// Event is Append for callers that speak in loose fields (the recorded
// session proxy): known names fill the Record, the rest go into Fields.
func (l *Log) Event(typ string, fields map[string]any) error {
	rec := Record{Type: typ}
	extra := map[string]any{}
	for k, v := range fields {
		s, isString := v.(string)
		switch {
		case k == "user" && isString:
			rec.User = s
		case k == "source" && isString:
			rec.Source = s
		case k == "method" && isString:
			rec.Method = s
		case k == "result" && isString:
			rec.Result = s
		case k == "reason" && isString:
			rec.Reason = s
		case k == "target" && isString:
			rec.Target = s
		case k == "session" && isString:
			rec.Session = s
		default:
			extra[k] = v
		}
	}
	if len(extra) > 0 {
		rec.Fields = extra
	}
	return l.Append(rec)
}

// LastHash is the hash of the most recent record.
func (l *Log) LastHash() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Close flushes and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// Seal renders rec (whose Prev must be set) as a line and returns the line
// and its hash.
func Seal(rec Record) (line []byte, hash string, err error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, "", fmt.Errorf("audit: encode record: %w", err)
	}
	sum := sha256.Sum256(body)
	hash = hex.EncodeToString(sum[:])
	line = make([]byte, 0, len(body)+80)
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, hash...)
	line = append(line, `"}`...)
	return line, hash, nil
}

var hashSuffix = regexp.MustCompile(`,"hash":"([0-9a-f]{64})"}$`)

// ErrBroken is wrapped by every chain error [Verify] returns.
var ErrBroken = errors.New("audit chain broken")

// BadRecordError names the first line that does not fit the chain.
type BadRecordError struct {
	Line   int
	Reason string
}

func (e *BadRecordError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBroken) true.
func (e *BadRecordError) Unwrap() error { return ErrBroken }

// Verify reads a whole log and checks every line's own hash and its link to
// the previous line. It returns the number of good records, and a
// *BadRecordError for the first bad line.
func Verify(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	prev := Genesis
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		lineNo := n + 1
		if err := CheckLine(line, prev); err != nil {
			return n, &BadRecordError{Line: lineNo, Reason: err.Error()}
		}
		prev = string(hashSuffix.FindSubmatch(line)[1])
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("audit: read line %d: %w", n+1, err)
	}
	return n, nil
}

// CheckLine checks one line against the hash of the line before it.
func CheckLine(line []byte, prev string) error {
	m := hashSuffix.FindSubmatchIndex(line)
	if m == nil {
		return errors.New(`no trailing "hash" member`)
	}
	claimed := string(line[m[2]:m[3]])
	body := make([]byte, 0, m[0]+1)
	body = append(body, line[:m[0]]...)
	body = append(body, '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != claimed {
		return errors.New("content does not match its hash (record edited)")
	}
	var head struct {
		Prev *string `json:"prev"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if head.Prev == nil {
		return errors.New(`no "prev" member`)
	}
	if *head.Prev != prev {
		return fmt.Errorf("prev %.12s… does not match the previous record's hash %.12s… (record inserted, deleted or reordered)", *head.Prev, prev)
	}
	return nil
}
