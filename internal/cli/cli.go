// Package cli is the verb dispatch every Rampart binary shares: `NAME VERB
// [flags]`, --help, --version, exit statuses, and a context cancelled by
// SIGINT or SIGTERM.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Command runs one verb with the arguments after it.
type Command func(ctx context.Context, args []string) error

// ExitStatus ends the verb with this exit status and no further message:
// the verb has printed what it had to (blocklist-agent status exits 3,
// "not running", as LSB init scripts and monitoring expect).
type ExitStatus int

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// UsageError marks a mistake in the command line: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Main runs the verb named by args[0] and returns the exit status: 0 on
// success, after --help (a verb returning flag.ErrHelp) or --version
// (printed on stdout), 2 for no verb,
// an unknown verb or a [UsageError], 1 for any other error, printed on
// stderr as "NAME VERB: error".
func Main(name, usage string, cmds map[string]Command, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	case "--version", "-version", "version":
		fmt.Fprintln(os.Stdout, Version(name))
		return 0
	}
	run, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", name, args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args[1:])
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var es ExitStatus
	if errors.As(err, &es) {
		return int(es)
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", name, args[0], err)
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Version is the one line `NAME --version` prints: the module version, the
// VCS commit (with "+dirty" for a modified tree) and its time, and the Go
// version, all from the build information the Go toolchain embeds.
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (no build information)"
	}
	return versionOf(name, bi)
}

func versionOf(name string, bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", name, version)
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		// Go stamps a pseudo-version that already holds the commit.
		if !strings.Contains(version, rev) {
			fmt.Fprintf(&b, " commit %s", rev)
		}
		if at != "" {
			fmt.Fprintf(&b, " (%s)", at)
		}
	}
	fmt.Fprintf(&b, " %s", bi.GoVersion)
	return b.String()
}

// Describe makes fs print, for -h and --help, the verb's synopsis (its
// positional arguments and main flags, e.g. "bastion user add NAME --key
// FILE"), a one-line summary, then its flags.
func Describe(fs *flag.FlagSet, synopsis, summary string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n", synopsis, summary)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
}

// ParseArgs parses fs from args with flags allowed before, between and
// after the positional arguments, and returns the positionals, of which
// there must be exactly want.
func ParseArgs(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	pos, err := ParseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, fmt.Errorf("want %d argument(s), got %d (%s)", want, len(pos), strings.Join(pos, " "))
	}
	return pos, nil
}

// ParseInterspersed parses fs from args with flags allowed before,
// between and after the positional arguments ("replay FILE --speed 2"),
// and returns the positionals.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
