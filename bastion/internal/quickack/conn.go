package quickack

import (
	"io"
	"net"
)

// Conn returns c with its reads going through [Reader]. It hides every
// method of c but those of net.Conn.
func Conn(c net.Conn) net.Conn {
	r := Reader(c)
	if r == io.Reader(c) {
		return c
	}
	return conn{Conn: c, r: r}
}

type conn struct {
	net.Conn
	r io.Reader
}

func (c conn) Read(p []byte) (int, error) { return c.r.Read(p) }
