package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMain(t *testing.T) {
	cmds := map[string]Command{
		"ok":     func(context.Context, []string) error { return nil },
		"helped": func(context.Context, []string) error { return flag.ErrHelp },
		"fail":   func(context.Context, []string) error { return errors.New("boom") },
		"usage":  func(context.Context, []string) error { return UsageError{errors.New("no --file")} },
		"three":  func(context.Context, []string) error { return ExitStatus(3) },
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
		{[]string{"three"}, 3, ""},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		code := Main("x", "usage: x VERB\n", cmds, tt.args, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.wantStderr) || (tt.wantStderr == "" && stderr.Len() > 0) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.wantStderr)
		}
	}
}

func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-06T07:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	got := versionOf("pki", bi)
	want := "pki v0.3.0 commit 0123456789ab+dirty (2026-12-06T07:00:00Z) go1.26.0"
	if got != want {
		t.Errorf("versionOf = %q, want %q", got, want)
	}
	bi.Main.Version = "v0.0.0-20261206073302-0123456789ab+dirty"
	if got, want := versionOf("pki", bi), "pki v0.0.0-20261206073302-0123456789ab+dirty (2026-12-06T07:00:00Z) go1.26.0"; got != want {
		t.Errorf("pseudo-version: %q, want %q", got, want)
	}
	if got := versionOf("pki", &debug.BuildInfo{GoVersion: "go1.26.0"}); got != "pki (devel) go1.26.0" {
		t.Errorf("no vcs: %q", got)
	}
}

func TestDescribe(t *testing.T) {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.String("key", "", "public key `FILE`")
	Describe(fs, "bastion user add NAME --key FILE", "enrol a user")
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parse --help: %v", err)
	}
	for _, want := range []string{"usage: bastion user add NAME --key FILE\n", "\nenrol a user\n", "-key FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
