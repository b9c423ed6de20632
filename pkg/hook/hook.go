// Package hook runs the reload and deploy commands that follow a certificate
// write or a firewall change: one shell command, bounded by a timeout, its
// output captured into the log and its exit status reported.
package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// DefaultTimeout bounds a hook that sets no timeout of its own.
const DefaultTimeout = 2 * time.Minute

// maxOutput caps the captured output so a chatty hook cannot fill memory.
const maxOutput = 64 << 10

// Hook is one command, run through /bin/sh -c so that users can write the
// same line they would type ("systemctl reload nginx").
type Hook struct {
	Command string
	Timeout time.Duration // 0 means DefaultTimeout
	Env     []string      // added to the base environment, KEY=VALUE
	// Environ is the base environment; nil means this process's at the
	// moment the hook starts (os.Environ). A caller that changes its own
	// environment while hooks may run passes a snapshot taken before.
	Environ []string
}

// Result is what a finished hook did.
type Result struct {
	ExitCode int // -1 if it did not exit normally (killed, timed out)
	Output   []byte
	Duration time.Duration
}

// ErrTimeout is returned (wrapped) when a hook outlives its timeout.
var ErrTimeout = errors.New("hook timed out")

// Run runs h, logs its output and outcome on logger, and returns an error if
// it could not start, timed out or exited non-zero.
func Run(ctx context.Context, logger *slog.Logger, h Hook) (Result, error) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", h.Command)
	base := h.Environ
	if base == nil {
		base = os.Environ()
	}
	cmd.Env = append(slices.Clip(base), h.Env...)
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Kill the whole process group on timeout, not just the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second

	start := time.Now()
	err := cmd.Run()
	res := Result{ExitCode: -1, Output: out.Bytes(), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	attrs := []any{"command", h.Command, "exit", res.ExitCode, "duration", res.Duration.Round(time.Millisecond), "output", string(res.Output)}
	switch {
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0 && ctx.Err() == nil:
		// The command succeeded and left a background job holding its
		// output ("(sleep 5; systemctl reload nginx) &"): the job runs on,
		// its later output is not captured.
		logger.Warn("hook exited 0 but left a background process holding its output; later output is not captured (redirect the job's output to /dev/null)", attrs...)
		err = nil
	case ctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("hook %q: %w after %s", h.Command, ErrTimeout, timeout)
	case err != nil:
		err = fmt.Errorf("hook %q: %w", h.Command, err)
	}
	if err != nil {
		logger.Error("hook failed", append(attrs, "err", err)...)
		return res, err
	}
	logger.Info("hook ran", attrs...)
	return res, nil
}

// limitedBuffer keeps the first maxOutput bytes. It does not embed
// bytes.Buffer: io.Copy would find the promoted ReadFrom and bypass the cap.
type limitedBuffer struct{ buf bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.buf.Len(); room < len(p) {
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte { return b.buf.Bytes() }
