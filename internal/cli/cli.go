// Package cli is the verb dispatch every Rampart binary shares: `NAME VERB
// [flags]`, --help, exit statuses, and a context cancelled by SIGINT or
// SIGTERM.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Command runs one verb with the arguments after it.
type Command func(ctx context.Context, args []string) error

// UsageError marks a mistake in the command line: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Main runs the verb named by args[0] and returns the exit status: 0 on
// success or after --help (a verb returning flag.ErrHelp), 2 for no verb,
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
	fmt.Fprintf(stderr, "%s %s: %v\n", name, args[0], err)
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
