// Command bastion is Rampart's SSH door: public key plus a second factor,
// jump or recorded session to allowed targets, tamper-evident audit.
//
//	bastion serve --config bastion.yaml
//	bastion user add NAME --key FILE [--totp] [--duo] [--force]
//	bastion user list | disable NAME | enable NAME | remove NAME | reset-totp NAME
//	bastion audit verify
//	bastion sshfp
//	bastion replay FILE [--speed N] [--idle-limit S]
//	bastion sessions
//	bastion watch ID
package main

import (
	"os"

	"github.com/rampart-sec/rampart/internal/cli"
)

const usage = `usage: bastion <command> [flags]

commands:
  serve      run the SSH bastion (--config FILE)
  user       enrol (add), list, disable, enable, remove users; reset-totp
  audit      verify the hash-chained audit log
  sshfp      print SSHFP DNS records for the host keys
  replay     play a recorded session in the terminal
  sessions   list live and past recorded sessions
  watch      follow a live session read-only

Run "bastion <command> --help" for a command's flags.
`

func main() {
	os.Exit(cli.Main("bastion", usage, map[string]cli.Command{
		"serve":    cmdServe,
		"user":     cmdUser,
		"audit":    cmdAudit,
		"sshfp":    cmdSSHFP,
		"replay":   cmdReplay,
		"sessions": cmdSessions,
		"watch":    cmdWatch,
	}, os.Args[1:], os.Stderr))
}
