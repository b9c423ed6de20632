package detect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// Source yields log lines, without their line ending, to fn until ctx ends
// or the source cannot go on. fn must not keep the slice.
type Source interface {
	Lines(ctx context.Context, fn func(line []byte)) error
}

// MaxLine is the longest line a source passes on; longer lines are
// dropped whole (a truncated line could match what the full one did not).
const MaxLine = 64 << 10

// File follows a log file like `tail -F`: it starts at the end (or the
// start, with FromStart), follows a file renamed away by logrotate to its
// end and then reopens the path, and starts over when the file is
// truncated in place (copytruncate). It polls rather than watches, which
// works the same on Linux and the BSDs.
type File struct {
	Path      string
	FromStart bool
	// Poll is how often the file is checked for new data (default 250ms).
	Poll   time.Duration
	Logger *slog.Logger
}

// Lines implements [Source].
func (f *File) Lines(ctx context.Context, fn func([]byte)) error {
	poll := f.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		file    *os.File
		offset  int64
		lb      lineBuffer
		missing bool
	)
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	fromStart := f.FromStart
	buf := make([]byte, 64<<10)
	for {
		if file == nil {
			nf, err := os.Open(f.Path)
			switch {
			case err == nil:
				file, offset, missing = nf, 0, false
				if !fromStart {
					if offset, err = file.Seek(0, io.SeekEnd); err != nil {
						return fmt.Errorf("tail %s: %w", f.Path, err)
					}
				}
				// Whatever appears later (after rotation) is new.
				fromStart = true
			case errors.Is(err, os.ErrNotExist):
				if !missing {
					log.Info("log file does not exist yet; waiting for it", "path", f.Path)
					missing = true
				}
				// A file created later holds only new lines.
				fromStart = true
			default:
				return fmt.Errorf("tail %s: %w", f.Path, err)
			}
		}
		drain := func() error {
			for {
				n, err := file.Read(buf)
				if n > 0 {
					offset += int64(n)
					lb.write(buf[:n], fn)
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("tail %s: %w", f.Path, err)
				}
			}
		}
		if file != nil {
			if err := drain(); err != nil {
				return err
			}
			// At the end of what was written: was the file replaced or
			// truncated?
			cur, err := file.Stat()
			if err != nil {
				return fmt.Errorf("tail %s: %w", f.Path, err)
			}
			if cur.Size() < offset {
				log.Info("log file truncated; reading from its start", "path", f.Path)
				if _, err := file.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("tail %s: %w", f.Path, err)
				}
				offset = 0
				lb.reset()
				continue
			}
			if onDisk, err := os.Stat(f.Path); err == nil && !os.SameFile(cur, onDisk) {
				log.Info("log file rotated; following the new one", "path", f.Path)
				// The writer may have added lines to the old file after
				// the read above, until it noticed the rotation.
				if err := drain(); err != nil {
					return err
				}
				lb.flush(fn)
				file.Close()
				file = nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// lineBuffer splits a byte stream into lines, holding back a partial last
// line until its end arrives.
type lineBuffer struct {
	partial []byte
	tooLong bool // dropping the rest of an over-long line
}

func (lb *lineBuffer) write(p []byte, fn func([]byte)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(lb.partial)+len(p) > MaxLine {
				lb.partial, lb.tooLong = lb.partial[:0], true
			} else if !lb.tooLong {
				lb.partial = append(lb.partial, p...)
			}
			return
		}
		line := p[:i]
		p = p[i+1:]
		if lb.tooLong || len(lb.partial)+len(line) > MaxLine {
			lb.partial, lb.tooLong = lb.partial[:0], false
			continue
		}
		if len(lb.partial) > 0 {
			line = append(lb.partial, line...)
		}
		fn(bytes.TrimSuffix(line, []byte("\r")))
		lb.partial = lb.partial[:0]
	}
}

// flush passes on a last line that had no line ending (a rotated file's
// end).
func (lb *lineBuffer) flush(fn func([]byte)) {
	if len(lb.partial) > 0 && !lb.tooLong {
		fn(lb.partial)
	}
	lb.reset()
}

func (lb *lineBuffer) reset() { lb.partial, lb.tooLong = lb.partial[:0], false }

// Command follows the standard output of a program, restarting it when it
// exits, such as journalctl --follow --output=json.
type Command struct {
	Argv []string
	// Restart is the pause before restarting a program that exited
	// (default 5s).
	Restart time.Duration
	Logger  *slog.Logger
}

// JournalctlSSHD is the command that follows sshd's messages in journald,
// whatever the unit is called (ssh.service on Debian, sshd.service
// elsewhere, sshd-session since OpenSSH 9.8).
var JournalctlSSHD = []string{"journalctl", "--follow", "--output=json", "--lines=0", "--no-pager",
	"--identifier=sshd", "--identifier=sshd-session"}

// Lines implements [Source].
func (c *Command) Lines(ctx context.Context, fn func([]byte)) error {
	if len(c.Argv) == 0 {
		return errors.New("command source: no command")
	}
	restart := c.Restart
	if restart <= 0 {
		restart = 5 * time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		err := c.once(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("log command exited; restarting it", "command", c.Argv, "err", err, "in", restart)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(restart):
		}
	}
}

func (c *Command) once(ctx context.Context, fn func([]byte)) error {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var lb lineBuffer
	r := bufio.NewReaderSize(out, 64<<10)
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		lb.write(buf[:n], fn)
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
		return fmt.Errorf("%v: %s", err, msg)
	}
	return err
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
