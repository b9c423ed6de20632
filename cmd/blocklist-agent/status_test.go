package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
)

// The status names the firewall that enforces the set, so an operator
// on a pf host sees pf and the table pf.conf must block.
func TestPrintStatusFirewall(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	st := agent.Status{PID: 42, Started: now, Server: "https://b.test:8443", Reachable: true,
		Backend: "pf", Table: "rampart", Version: 3, Entries: 1, IPv4: 1}
	var b strings.Builder
	printStatus(&b, st, true, now)
	if !strings.Contains(b.String(), "firewall:     pf, table rampart\n") {
		t.Errorf("status lacks the firewall line:\n%s", b.String())
	}
	// A status file from an agent before the field existed says nothing.
	st.Backend, st.Table = "", ""
	b.Reset()
	printStatus(&b, st, false, now)
	if strings.Contains(b.String(), "firewall:") {
		t.Errorf("firewall line without a backend:\n%s", b.String())
	}
}
