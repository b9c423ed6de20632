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
	"flag"
	"fmt"
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

func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("bastion "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion %s\n\n", usage)
		if s := verbSummaries[name]; s != "" {
			fmt.Fprintf(fs.Output(), "%s\n\n", s)
		}
		fmt.Fprintf(fs.Output(), "flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// verbSummaries are the one-line descriptions --help prints.
var verbSummaries = map[string]string{
	"serve":           "Run the SSH bastion: public key plus TOTP or Duo, jump and recorded sessions, hash-chained audit.",
	"audit verify":    "Check the audit log's hash chain; name the first record that does not follow.",
	"sshfp":           "Print SSHFP DNS records for the host keys (read only: never creates keys).",
	"user add":        "Enrol a user: their public key, and a TOTP secret (QR code, otpauth URI) and/or Duo.",
	"user list":       "List the users with their state, second factor and recovery codes left.",
	"user disable":    "Refuse every login of the user, keeping keys and secrets.",
	"user enable":     "Undo user disable.",
	"user remove":     "Delete the user, their TOTP secret and recovery codes.",
	"user reset-totp": "Give the user a new TOTP secret (QR code, otpauth URI) and new recovery codes.",
}
