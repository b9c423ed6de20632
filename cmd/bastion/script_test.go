package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run this binary's main as "bastion".
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"bastion": main})
}

// TestScripts runs testdata/script/*.txtar: the verbs as a user types them.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
