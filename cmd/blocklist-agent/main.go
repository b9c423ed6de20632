// Command blocklist-agent enforces Rampart's blocklist on one host.
//
//	blocklist-agent apply --backend nftables|pf --file LIST... [--allow PREFIX...]
//	blocklist-agent run --config agent.yaml
//	blocklist-agent status
//	blocklist-agent flush --backend nftables|pf
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: blocklist-agent <command> [flags]

commands:
  apply   one-shot: replace the enforced set with list files, then exit
  run     follow blocklistd, enforce, report local detections
  status  show version, entry counts, last sync and server reachability
  flush   remove everything Rampart installed in the firewall

Run "blocklist-agent <command> --help" for a command's flags.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := map[string]func(context.Context, []string) error{
		"apply":  cmdApply,
		"flush":  cmdFlush,
		"run":    cmdRun,
		"status": cmdStatus,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "blocklist-agent: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "blocklist-agent %s: %v\n", os.Args[1], err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errHelp is returned by a verb that printed its --help.
var errHelp = errors.New("help requested")

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
