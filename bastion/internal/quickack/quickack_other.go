//go:build !linux

package quickack

import (
	"io"
	"net"
)

// Reader returns c: TCP_QUICKACK exists only on Linux.
func Reader(c net.Conn) io.Reader { return c }
