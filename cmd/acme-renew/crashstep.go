//go:build !acmecrash

package main

// crashStep is nil in every real build; the crash tests build with the
// acmecrash tag (crashstep_acmecrash.go).
func crashStep() func(string) { return nil }
