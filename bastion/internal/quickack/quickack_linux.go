package quickack

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reader re-arms TCP_QUICKACK on its socket before every read.
type reader struct {
	rc syscall.RawConn
	r  io.Reader
}

func (q reader) Read(p []byte) (int, error) {
	q.rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return q.r.Read(p)
}

// Reader returns c as a reader that acknowledges promptly, or c itself
// when it is not a TCP connection.
func Reader(c net.Conn) io.Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return reader{rc: rc, r: c}
}
