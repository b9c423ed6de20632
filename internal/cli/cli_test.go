package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestMain(t *testing.T) {
	cmds := map[string]Command{
		"ok":     func(context.Context, []string) error { return nil },
		"helped": func(context.Context, []string) error { return flag.ErrHelp },
		"fail":   func(context.Context, []string) error { return errors.New("boom") },
		"usage":  func(context.Context, []string) error { return UsageError{errors.New("no --file")} },
		"wrapped": func(context.Context, []string) error {
			return fmt.Errorf("apply: %w", UsageError{errors.New("bad --allow")})
		},
	}
	tests := []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{nil, 2, "usage: x"},
		{[]string{"--help"}, 0, "usage: x"},
		{[]string{"nope"}, 2, `x: unknown command "nope"`},
		{[]string{"ok"}, 0, ""},
		{[]string{"helped"}, 0, ""},
		{[]string{"fail"}, 1, "x fail: boom"},
		{[]string{"usage"}, 2, "x usage: no --file"},
		{[]string{"wrapped"}, 2, "x wrapped: apply: bad --allow"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := Main("x", "usage: x VERB\n", cmds, tt.args, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.wantStderr) || (tt.wantStderr == "" && stderr.Len() > 0) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.wantStderr)
		}
	}
}
