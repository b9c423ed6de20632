// Command blocklistd decides which addresses every Rampart host blocks and
// distributes the blocklist to the agents.
//
//	blocklistd serve --config blocklistd.yaml
//	blocklistd ban PREFIX [--ttl D] [--reason T]
//	blocklistd unban PREFIX
//	blocklistd allow PREFIX [--reason T] [--remove]
//	blocklistd list [--json]
//	blocklistd dev-certs --out DIR [--host H]...
//
// ban, unban, allow and list talk to the running daemon's admin API over
// mTLS with a certificate carrying the admin role (the store is held open by
// the daemon, so they never touch it directly).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: blocklistd <command> [flags]

commands:
  serve      run the daemon: blocklistd serve --config blocklistd.yaml
  ban        ban PREFIX [--ttl D] [--reason T]   (admin API)
  unban      unban PREFIX                        (admin API)
  allow      allow PREFIX [--reason T] [--remove] (admin API)
  list       list decisions and the allowlist [--json] (admin API)
  dev-certs  write a throwaway CA and certificates for a demo or a test

The admin verbs find the daemon through --config (its cli: section) or
--url/--cert/--key/--ca, or BLOCKLISTD_URL/_CERT/_KEY/_CA.
Run "blocklistd <command> --help" for a command's flags.
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
		"serve":     cmdServe,
		"ban":       cmdBan,
		"unban":     cmdUnban,
		"allow":     cmdAllow,
		"list":      cmdList,
		"dev-certs": cmdDevCerts,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "blocklistd: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err := run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "blocklistd %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
