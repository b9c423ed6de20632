package recorded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

// State is what [List] knows about a recording.
type State string

const (
	// Live: the recording process holds the session's lock.
	Live State = "live"
	// Ended: the session ended and its recording was closed.
	Ended State = "ended"
	// Interrupted: the recorder died (crash, kill) while the session ran;
	// the file holds everything up to the last flush.
	Interrupted State = "interrupted"
)

// Recording describes one file in the recordings directory: the screen
// recording of a shell or exec session (ID.cast) or the transfer log of an
// sftp or scp session (ID.transfers.cast).
type Recording struct {
	ID      string
	Path    string
	Header  asciicast.Header
	Size    int64
	ModTime time.Time
	State   State
	// Kind is "shell", "exec", "sftp" or "scp"; recordings made before
	// the header carried it are told apart by their command.
	Kind string
	// Duration is the time of the last complete event; for a transfer
	// session that ended, the time it ended.
	Duration time.Duration
	// Transfers and TransferBytes count the file operations of an sftp or
	// scp session and the bytes they moved.
	Transfers, TransferBytes int64
	// Err is set when the file could not be read as asciicast.
	Err error
}

// List returns the recordings in dir, ordered by session id (start time).
func List(dir string) ([]Recording, error) {
	files, err := scan(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Recording, 0, len(files))
	for _, f := range files {
		r := Recording{ID: f.id, Path: f.path, Size: f.size, ModTime: f.mod, State: f.state}
		if f.transfers {
			var sum transferSummary
			r.Header, sum, r.Err = summarizeLog(r.Path)
			r.Duration, r.Transfers, r.TransferBytes = sum.duration, sum.count, sum.bytes
		} else {
			r.Header, r.Duration, r.Err = summarize(r.Path)
		}
		r.Kind = r.Header.Kind
		if r.Kind == "" && r.Err == nil {
			r.Kind = string(kindShell)
			if r.Header.Command != "" {
				r.Kind = string(kindExec)
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// summarizeLog reads the header and the transfers of a transfer log.
func summarizeLog(path string) (asciicast.Header, transferSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return asciicast.Header{}, transferSummary{}, err
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		return asciicast.Header{}, transferSummary{}, err
	}
	sum, err := summarizeTransfers(rd)
	return rd.Header, sum, err
}

// summarize reads the header and the time of the last complete event,
// reading only the file's tail.
func summarize(path string) (asciicast.Header, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return asciicast.Header{}, 0, err
	}
	defer f.Close()
	rd, err := asciicast.NewReader(io.LimitReader(f, 1<<20))
	if err != nil {
		return asciicast.Header{}, 0, err
	}
	const tail = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return rd.Header, 0, err
	}
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return rd.Header, 0, err
	}
	lines := bytes.Split(buf, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if len(l) == 0 || l[0] != '[' {
			continue
		}
		r, err := asciicast.NewReader(io.MultiReader(strings.NewReader(`{"version":2}`+"\n"), bytes.NewReader(append(l, '\n'))))
		if err != nil {
			continue
		}
		if ev, err := r.Next(); err == nil {
			return rd.Header, ev.Time, nil
		}
	}
	return rd.Header, 0, nil
}

// Pruned is a recording removed by [Prune].
type Pruned struct {
	Path   string
	Size   int64
	Reason string // "age" or "size"
}

// Prune applies r to dir at time now: recordings and transfer logs last
// written before now-MaxAge go, then the oldest until the total is within
// MaxBytes. Live sessions' files are never removed.
func Prune(dir string, r Retention, now time.Time) ([]Pruned, error) {
	if r.MaxAge <= 0 && r.MaxBytes <= 0 {
		return nil, nil
	}
	recs, err := scan(dir)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range recs {
		total += f.size
	}
	var out []Pruned
	var errs []error
	remove := func(f sessionFile, reason string) {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("recorded: prune %s: %w", f.path, err))
			return
		}
		os.Remove(livePath(dir, f.id)) // a stale marker of an interrupted session
		total -= f.size
		out = append(out, Pruned{Path: f.path, Size: f.size, Reason: reason})
	}
	var kept []sessionFile
	for _, f := range recs {
		if f.state == Live {
			kept = append(kept, f)
			continue
		}
		if r.MaxAge > 0 && now.Sub(f.mod) > r.MaxAge {
			remove(f, "age")
			continue
		}
		kept = append(kept, f)
	}
	for _, f := range kept {
		if r.MaxBytes <= 0 || total <= r.MaxBytes {
			break
		}
		if f.state != Live {
			remove(f, "size")
		}
	}
	return out, errors.Join(errs...)
}

// sessionFile is a recording or transfer log found by [scan].
type sessionFile struct {
	id, path  string
	transfers bool // a transfer log, not a screen recording
	size      int64
	mod       time.Time
	state     State
}

// scan returns the recordings and transfer logs in dir, oldest (by
// modification time) first, each with its state from its live marker.
func scan(dir string) ([]sessionFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recorded: list %s: %w", dir, err)
	}
	var out []sessionFile
	for _, e := range ents {
		id, transfers, ok := parseFileName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f := sessionFile{id: id, path: filepath.Join(dir, e.Name()), transfers: transfers, size: info.Size(), mod: info.ModTime()}
		switch probeLive(livePath(dir, id)) {
		case markerHeld:
			f.state = Live
		case markerStale:
			f.state = Interrupted
		default:
			f.state = Ended
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].mod.Before(out[j].mod) })
	return out, nil
}

// maybePrune runs [Prune] at most every 10 seconds (always when force).
func (p *Proxy) maybePrune(force bool) {
	r := p.opts.Retention
	if r.MaxAge <= 0 && r.MaxBytes <= 0 {
		return
	}
	p.pruneMu.Lock()
	defer p.pruneMu.Unlock()
	now := p.now()
	if !force && now.Sub(p.lastPrune) < 10*time.Second {
		return
	}
	p.lastPrune = now
	pruned, err := Prune(p.opts.Dir, r, now)
	for _, x := range pruned {
		p.metrics.pruned.Inc()
		p.audit(EventPruned, map[string]any{"file": x.Path, "bytes": x.Size, "reason": x.Reason})
	}
	if err != nil {
		p.log.Error("pruning recordings", "dir", p.opts.Dir, "err", err)
	}
}

// FollowOptions tunes [Follow].
type FollowOptions struct {
	// Poll is how often to look for new data; 0 means 200ms.
	Poll time.Duration
	// OnHeader receives the header once, before any output; may be nil.
	OnHeader func(asciicast.Header)
}

// Follow writes the output of the recording of session id in dir to w as it
// grows, like tail -f, and returns once the session is no longer live and
// everything recorded has been written, or when ctx ends. For an sftp or
// scp session it writes the transfers instead, one [Transfer] line each.
// It only reads the file: the watcher cannot reach the session.
func Follow(ctx context.Context, dir, id string, w io.Writer, o FollowOptions) error {
	if !ValidID(id) {
		return fmt.Errorf("recorded: %q is not a session id", id)
	}
	poll := o.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	f, err := os.Open(CastPath(dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.Open(TransfersPath(dir, id))
	}
	if err != nil {
		return fmt.Errorf("recorded: session %s: %w", id, err)
	}
	defer f.Close()
	var rd *asciicast.Reader
	for rd == nil {
		rd, err = asciicast.NewReader(f)
		if err != nil {
			if probeLive(livePath(dir, id)) != markerHeld {
				return fmt.Errorf("recorded: session %s: %w", id, err)
			}
			if _, serr := f.Seek(0, io.SeekStart); serr != nil {
				return serr
			}
			if err := sleepCtx(ctx, poll); err != nil {
				return err
			}
		}
	}
	if o.OnHeader != nil {
		o.OnHeader(rd.Header)
	}
	bw := bufio.NewWriter(w)
	write := func(ev asciicast.Event) {
		if ev.Code == asciicast.Output {
			bw.WriteString(ev.Data)
		} else if t, ok := parseTransfer(ev); ok && IsTransferKind(rd.Header.Kind) {
			bw.WriteString(t.String() + "\n")
		}
	}
	for {
		ev, err := rd.Next()
		switch {
		case err == nil:
			write(ev)
			continue
		case errors.Is(err, io.EOF), errors.Is(err, asciicast.ErrTornLine):
		default:
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if probeLive(livePath(dir, id)) != markerHeld {
			// One more pass: the recorder may have flushed just before
			// it let go of the lock.
			for {
				ev, err := rd.Next()
				if err != nil {
					break
				}
				write(ev)
			}
			return bw.Flush()
		}
		if err := sleepCtx(ctx, poll); err != nil {
			return err
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
