// Command blocklistd decides which addresses every Rampart host blocks and
// distributes the blocklist to the agents.
//
//	blocklistd serve --config blocklistd.yaml
//	blocklistd ban PREFIX [--ttl D] [--reason T]
//	blocklistd unban PREFIX
//	blocklistd allow PREFIX [--reason T] [--remove]
//	blocklistd list [--json]
//	blocklistd import FILE|- [--ttl D] [--reason T] [--skip-invalid] [--force]
//	blocklistd feed status | fetch NAME | accept NAME
//	blocklistd dev-certs --out DIR [--host H]...
//
// ban, unban, allow and list talk to the running daemon's admin API over
// mTLS with a certificate carrying the admin role (the store is held open by
// the daemon, so they never touch it directly).
package main

import (
	"os"

	"github.com/rampart-sec/rampart/internal/cli"
)

const usage = `usage: blocklistd <command> [flags]

commands:
  serve      run the daemon: blocklistd serve --config blocklistd.yaml
  ban        ban PREFIX [--ttl D] [--reason T]   (admin API)
  unban      unban PREFIX                        (admin API)
  allow      allow PREFIX [--reason T] [--remove] (admin API)
  list       list decisions and the allowlist [--json] (admin API)
  import     import FILE|- [--ttl D] [--reason T] [--skip-invalid]: bulk bans, one commit (admin API)
  feed       feed status | feed fetch NAME | feed accept NAME (admin API)
  dev-certs  write a throwaway CA and certificates for a demo or a test

The admin verbs find the daemon through --config (its cli: section) or
--url/--cert/--key/--ca, or BLOCKLISTD_URL/_CERT/_KEY/_CA.
Run "blocklistd <command> --help" for a command's flags.
`

func main() {
	os.Exit(cli.Main("blocklistd", usage, map[string]cli.Command{
		"serve":     cmdServe,
		"ban":       cmdBan,
		"unban":     cmdUnban,
		"allow":     cmdAllow,
		"list":      cmdList,
		"feed":      cmdFeed,
		"import":    cmdImport,
		"dev-certs": cmdDevCerts,
	}, os.Args[1:], os.Stderr))
}
