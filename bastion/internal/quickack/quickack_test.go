package quickack

import (
	"io"
	"net"
	"testing"
)

// Reader must hand over exactly what the socket carries, on TCP (where
// it re-arms TCP_QUICKACK on Linux) and on anything else (untouched).
func TestReaderReadsThrough(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := make([]byte, 300<<10)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		c.Write(want)
		c.Close()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Through Conn and its small buffer: every byte, in order.
	got, err := io.ReadAll(Conn(c, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("read %d bytes, not the %d sent", len(got), len(want))
	}

	a, b := net.Pipe()
	if r := Reader(a); r != io.Reader(a) {
		t.Fatalf("Reader wrapped a non-TCP connection: %T", r)
	}
	a.Close()
	b.Close()
}
