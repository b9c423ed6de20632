//go:build !linux

package bastion

import (
	"io"
	"net"
)

// quickAck is a no-op where TCP_QUICKACK does not exist (OpenBSD,
// FreeBSD); see quickack_linux.go.
func quickAck(c net.Conn) io.Reader { return c }
