// Package quickack makes the kernel acknowledge what arrives on a TCP
// connection at once, instead of holding the ACK for up to 40 ms in the
// hope of piggybacking it on a reply (Linux's TCP_QUICKACK, re-armed
// before every read). Elsewhere it changes nothing.
//
// OpenSSH leaves Nagle's algorithm on for non-interactive connections,
// and during the handshake it writes two small packets in a row
// (KEX_ECDH_INIT after KEXINIT, SERVICE_REQUEST after NEWKEYS). Nagle
// holds the second until the first is acknowledged, and a delayed ACK
// makes that a 40 ms stall: two of them were 80 of the 117 ms an OpenSSH
// login to the bastion took. sshd does the same towards the bastion on a
// jump's upstream connection, so that side re-arms it too (a whole
// "ssh -J" login: 237 -> 205 ms, median of 12 interleaved pairs).
//
// The flag is not sticky (the kernel drops back to delayed ACKs when it
// sees a request/response pattern), hence once per read: one extra system
// call per read, which the callers keep large (a 128 KiB buffer on the
// client side, the relay's 64 KiB upstream).
package quickack
