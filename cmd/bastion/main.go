// Command bastion is Rampart's SSH door: public key plus a second factor,
// jump or recorded session to allowed targets, tamper-evident audit.
//
//	bastion serve --config bastion.yaml
//	bastion user add NAME --key FILE [--totp] [--duo]
//	bastion audit verify
//	bastion sshfp
//	bastion replay FILE [--speed N] [--idle-limit S]
//	bastion sessions
//	bastion watch ID
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: bastion <command> [flags]

commands:
  serve      run the SSH bastion (--config FILE)
  user add   enrol a user: key, TOTP and/or Duo
  audit      verify the hash-chained audit log
  sshfp      print SSHFP DNS records for the host keys
  replay     play a recorded session in the terminal
  sessions   list live and past recorded sessions
  watch      follow a live session read-only

Run "bastion <command> --help" for a command's flags.
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
		"serve":    cmdServe,
		"user":     cmdUser,
		"audit":    cmdAudit,
		"sshfp":    cmdSSHFP,
		"replay":   cmdReplay,
		"sessions": cmdSessions,
		"watch":    cmdWatch,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bastion: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "bastion %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
