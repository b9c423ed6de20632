package bastion_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/rampart-sec/rampart/bastion"
)

func TestReadMenuLine(t *testing.T) {
	tests := []struct {
		in, want, echo string
		eof            bool
	}{
		{"2\r", "2", "2\r\n", false},
		{"12\x7f3\n", "13", "12\b \b3\r\n", false},
		{"\x1b[A1\r", "[A1", "[A1\r\n", false}, // escape bytes dropped, printable rest kept
		{"\x03", "", "", true},
		{"12", "", "12", true}, // no newline before EOF
	}
	for _, tt := range tests {
		var echo bytes.Buffer
		got, err := bastion.ReadMenuLine(strings.NewReader(tt.in), &echo, 16)
		if tt.eof != (err == io.EOF) || got != tt.want || echo.String() != tt.echo {
			t.Errorf("ReadMenuLine(%q) = %q, %v, echo %q; want %q, eof=%v, echo %q", tt.in, got, err, echo.String(), tt.want, tt.eof, tt.echo)
		}
	}
}

// FuzzMenuInput: whatever a client types at the menu, the line stays
// short and printable, and a choice is always in range.
func FuzzMenuInput(f *testing.F) {
	f.Add([]byte("1\r"), 3)
	f.Add([]byte("\x7f\x7f99999999999999999999\r"), 2)
	f.Add([]byte("-1\n"), 5)
	f.Add([]byte("\x00\xff\r"), 1)
	f.Fuzz(func(t *testing.T, in []byte, n int) {
		line, err := bastion.ReadMenuLine(bytes.NewReader(in), io.Discard, 16)
		if err != nil {
			return
		}
		if len(line) > 16 {
			t.Fatalf("line of %d bytes", len(line))
		}
		for _, c := range []byte(line) {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("unprintable byte %#x in %q", c, line)
			}
		}
		if i, ok := bastion.ParseMenuChoice(line, n); ok && (i < 1 || i > n) {
			t.Fatalf("choice %d out of 1..%d", i, n)
		}
	})
}
