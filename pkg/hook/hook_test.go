package hook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		hook     Hook
		wantErr  error
		wantExit int
		wantOut  string
	}{
		{"ok", Hook{Command: "echo reloaded $X", Env: []string{"X=nginx"}}, nil, 0, "reloaded nginx\n"},
		{"base environment", Hook{Command: "echo ${HOME-unset} $X", Environ: []string{"X=a"}, Env: []string{"X=b"}}, nil, 0, "unset b\n"},
		{"fails", Hook{Command: "echo nope >&2; exit 3"}, nil, 3, "nope\n"},
		{"timeout", Hook{Command: "sleep 30", Timeout: 100 * time.Millisecond}, ErrTimeout, -1, ""},
		// The shell exits 0; a background job keeps the output pipe open
		// past the one-second WaitDelay. That is a success, not a failure.
		{"background job", Hook{Command: "(sleep 3; echo late) & echo started", Timeout: 10 * time.Second}, nil, 0, "started\n"},
		{"background job, failed", Hook{Command: "(sleep 3; echo late) & echo started; exit 4", Timeout: 10 * time.Second}, nil, 4, "started\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			res, err := Run(context.Background(), slog.New(slog.NewTextHandler(&log, nil)), tt.hook)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantExit != 0 && err == nil {
				t.Fatal("non-zero exit reported no error")
			}
			if tt.wantExit == 0 && err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tt.wantExit || string(res.Output) != tt.wantOut {
				t.Fatalf("exit=%d out=%q, want %d %q", res.ExitCode, res.Output, tt.wantExit, tt.wantOut)
			}
			if tt.wantOut != "" && !strings.Contains(log.String(), strings.TrimSpace(tt.wantOut)) {
				t.Fatalf("output not logged: %s", log.String())
			}
		})
	}
}

func TestOutputCapped(t *testing.T) {
	res, err := Run(context.Background(), slog.New(slog.DiscardHandler), Hook{Command: "head -c 1000000 /dev/zero"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) != maxOutput {
		t.Fatalf("captured %d bytes, want %d", len(res.Output), maxOutput)
	}
}
