//go:build acmecrash

package main

import (
	"os"
	"syscall"
)

// crashStep, in the test build only, kills the process with SIGKILL at the
// step named by RAMPART_ACME_CRASH_AT ("swap", "hook 1 ran", ...: the
// names acme.Options.Step documents), as a power cut or the OOM killer
// would, so test/acme can check what the next run finishes.
func crashStep() func(string) {
	at := os.Getenv("RAMPART_ACME_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
