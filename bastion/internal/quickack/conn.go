package quickack

import (
	"bufio"
	"net"
)

// Conn returns c with its reads going through [Reader] behind a buffer of
// size bytes, so that a reader taking a few bytes at a time (x/crypto/ssh
// reads a packet's length, then its body) costs one read, and one re-arm,
// per buffer rather than per call. It hides every method of c but those
// of net.Conn.
func Conn(c net.Conn, size int) net.Conn {
	return conn{Conn: c, r: bufio.NewReaderSize(Reader(c), size)}
}

type conn struct {
	net.Conn
	r *bufio.Reader
}

func (c conn) Read(p []byte) (int, error) { return c.r.Read(p) }
