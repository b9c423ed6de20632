package client_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/blocklist/client"
)

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		"ssh brute force": "ssh brute force",
		"café":            "café",
		"a\x1b[2Jb":       `"a\x1b[2Jb"`,
		"x\u202ey":        `"x\u202ey"`,
		"tab\there":       `"tab\there"`,
	} {
		if got := client.SafeText(in); got != want {
			t.Errorf("SafeText(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestListingWriteTableEscapes(t *testing.T) {
	l := client.Listing{Version: 3, Total: 2,
		Decisions: []client.Decision{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Action: "ban", Source: "manual", Reason: "evil\x1b]0;x\x07"}},
		Allow:     []client.AllowEntry{{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Reason: "bastion"}},
	}
	var b bytes.Buffer
	if err := l.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("control characters reached the table:\n%q", out)
	}
	for _, want := range []string{"version 3: 1 of 2 decisions, 1 allowlisted", "192.0.2.0/24", "never", "198.51.100.1/32  allow"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
