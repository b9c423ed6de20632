package bastion

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckReader reads from a TCP socket with TCP_QUICKACK re-armed
// before every read, so the kernel acknowledges what arrives at once
// instead of holding the ACK for up to 40 ms in the hope of piggybacking
// it on a reply.
//
// OpenSSH leaves Nagle's algorithm on for non-interactive connections,
// and during the handshake it writes two small packets in a row
// (KEX_ECDH_INIT after KEXINIT, SERVICE_REQUEST after NEWKEYS). Nagle
// holds the second until the first is acknowledged, and a delayed ACK
// makes that a 40 ms stall: two of them were 80 of the 117 ms an OpenSSH
// login to the bastion took. sshd does the same towards the bastion on
// a jump's upstream connection, so that side re-arms it too (a whole
// "ssh -J" login: 237 -> 205 ms, median of 12 interleaved pairs).
//
// The flag is not sticky (the kernel drops back to delayed ACKs when it
// sees a request/response pattern), hence once per read: one extra
// system call per read of up to 128 KiB (client side, behind a buffer)
// or 64 KiB (the relay's buffer upstream).
type quickAckReader struct {
	rc syscall.RawConn
	r  io.Reader
}

func (q quickAckReader) Read(p []byte) (int, error) {
	q.rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return q.r.Read(p)
}

// quickAck returns c as a reader that acknowledges promptly, or c itself
// when it is not a TCP connection.
func quickAck(c net.Conn) io.Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return quickAckReader{rc: rc, r: c}
}
