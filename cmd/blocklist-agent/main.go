// Command blocklist-agent enforces Rampart's blocklist on one host.
//
//	blocklist-agent apply --backend nftables|pf --file LIST... [--allow PREFIX...]
//	blocklist-agent run --config agent.yaml
//	blocklist-agent status
//	blocklist-agent flush --backend nftables|pf
package main

import (
	"flag"
	"os"

	"github.com/rampart-sec/rampart/internal/cli"
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
	os.Exit(cli.Main("blocklist-agent", usage, map[string]cli.Command{
		"apply":  cmdApply,
		"flush":  cmdFlush,
		"run":    cmdRun,
		"status": cmdStatus,
	}, os.Args[1:], os.Stderr))
}

// errHelp is returned by a verb that printed its --help.
var errHelp = flag.ErrHelp

// usageError marks a mistake in the command line: exit status 2.
func usageError(err error) error { return cli.UsageError{Err: err} }
