package apply

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/pkg/listfile"
)

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":     "192.0.2.7/32",
		"192.0.2.0/24":  "192.0.2.0/24",
		"2001:db8::1":   "2001:db8::1/128",
		"2001:db8::/32": "2001:db8::/32",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p != netip.MustParsePrefix(want) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "192.0.2", "192.0.2.0/33", "host.example"} {
		if p, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", bad, p)
		}
	}
}

func TestWriteRejectedBounded(t *testing.T) {
	s := Summary{RejectedCount: 7}
	for i := range 5 {
		s.Rejected = append(s.Rejected, listfile.LineError{File: "drop.txt", Line: i + 1, Text: "x", Reason: "invalid"})
	}
	var b bytes.Buffer
	s.WriteRejected(&b, 3)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || lines[0] != `drop.txt:1: invalid: "x"` || lines[3] != "... and 4 more rejected lines" {
		t.Fatalf("got:\n%s", b.String())
	}
}
