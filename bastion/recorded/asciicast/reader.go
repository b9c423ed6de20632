package asciicast

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// MaxLineSize bounds one line a [Reader] accepts.
const MaxLineSize = 4 << 20

func marshalHeader(h Header) ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("asciicast: encode header: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrTornLine is returned by [Reader.Next] when the stream ends inside a
// line: a file still being written, or cut by a crash mid-write.
var ErrTornLine = errors.New("asciicast: last line incomplete")

// Reader reads an asciicast v2 stream.
type Reader struct {
	r      *bufio.Reader
	Header Header
	line   int
	// pending holds a partial line seen at EOF, kept for a follower that
	// retries after more data arrives.
	pending []byte
}

// NewReader reads and checks the header line.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	line, err := rd.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, ErrTornLine) {
			return nil, fmt.Errorf("asciicast: line 1: no header: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	if err := json.Unmarshal(line, &rd.Header); err != nil {
		return nil, fmt.Errorf("asciicast: line 1: header: %w", err)
	}
	if rd.Header.Version != Version {
		return nil, fmt.Errorf("asciicast: line 1: version %d, want %d", rd.Header.Version, Version)
	}
	if rd.Header.Width < 0 || rd.Header.Height < 0 {
		return nil, fmt.Errorf("asciicast: line 1: negative terminal size %dx%d", rd.Header.Width, rd.Header.Height)
	}
	return rd, nil
}

// readLine returns the next complete line without its newline. At EOF
// inside a line it keeps the bytes for the next call and returns
// [ErrTornLine].
func (rd *Reader) readLine() ([]byte, error) {
	for {
		chunk, err := rd.r.ReadSlice('\n')
		if len(rd.pending)+len(chunk) > MaxLineSize {
			return nil, fmt.Errorf("asciicast: line %d: longer than %d bytes", rd.line+1, MaxLineSize)
		}
		switch {
		case err == nil:
			rd.line++
			if len(rd.pending) > 0 {
				line := append(rd.pending, chunk[:len(chunk)-1]...)
				rd.pending = nil
				return line, nil
			}
			return chunk[:len(chunk)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			rd.pending = append(rd.pending, chunk...)
		case errors.Is(err, io.EOF):
			rd.pending = append(rd.pending, chunk...)
			if len(rd.pending) == 0 {
				return nil, io.EOF
			}
			return nil, ErrTornLine
		default:
			return nil, err
		}
	}
}

// Next returns the next event; io.EOF after the last complete line, or
// [ErrTornLine] if the stream ends inside a line. Blank lines are skipped.
func (rd *Reader) Next() (Event, error) {
	for {
		line, err := rd.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return parseEvent(line, rd.line)
	}
}

func parseEvent(line []byte, n int) (Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Event{}, fmt.Errorf("asciicast: line %d: %w", n, err)
	}
	if len(raw) != 3 {
		return Event{}, fmt.Errorf("asciicast: line %d: event has %d elements, want 3", n, len(raw))
	}
	var ev Event
	var secs float64
	if err := json.Unmarshal(raw[0], &secs); err != nil {
		return Event{}, fmt.Errorf("asciicast: line %d: time: %w", n, err)
	}
	if secs < 0 || math.IsNaN(secs) || secs > float64(math.MaxInt64/int64(time.Second)) {
		return Event{}, fmt.Errorf("asciicast: line %d: time %v out of range", n, secs)
	}
	ev.Time = time.Duration(secs * float64(time.Second))
	if err := json.Unmarshal(raw[1], &ev.Code); err != nil {
		return Event{}, fmt.Errorf("asciicast: line %d: code: %w", n, err)
	}
	if err := json.Unmarshal(raw[2], &ev.Data); err != nil {
		return Event{}, fmt.Errorf("asciicast: line %d: data: %w", n, err)
	}
	return ev, nil
}

// PlayOptions tunes [Play].
type PlayOptions struct {
	// Speed multiplies playback speed; 0 means 1.
	Speed float64
	// IdleLimit caps each pause; 0 uses the header's idle_time_limit, and
	// no cap when that is unset too.
	IdleLimit time.Duration
	// Sleep waits; nil sleeps on a timer that ctx can interrupt.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Play writes the output events of rd to w, paced as recorded. Input,
// resize and marker events are not written. A torn last line ends playback
// without error: that is how an interrupted recording ends.
func Play(ctx context.Context, w io.Writer, rd *Reader, o PlayOptions) error {
	speed := o.Speed
	if speed <= 0 {
		speed = 1
	}
	idle := o.IdleLimit
	if idle == 0 && rd.Header.IdleTimeLimit > 0 {
		idle = time.Duration(rd.Header.IdleTimeLimit * float64(time.Second))
	}
	sleep := o.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var last time.Duration
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, ErrTornLine) {
			return nil
		}
		if err != nil {
			return err
		}
		gap := ev.Time - last
		last = ev.Time
		if gap < 0 {
			gap = 0
		}
		if idle > 0 && gap > idle {
			gap = idle
		}
		if gap > 0 {
			if err := sleep(ctx, time.Duration(float64(gap)/speed)); err != nil {
				return err
			}
		}
		if ev.Code == Output {
			if _, err := io.WriteString(w, ev.Data); err != nil {
				return err
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
