//go:build linux

package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

// maxElemsBytes bounds the element list of one message: it is a single
// netlink attribute, whose length field is 16 bits.
const maxElemsBytes = 60 << 10

// batch is one nfnetlink batch (one kernel transaction), encoded as it is
// sent. Element messages are written straight into the buffer: a million
// addresses cost 16 MiB here, not a million Go structures.
type batch struct {
	buf     []byte
	seq     uint32
	lastMsg int // offset of the last message inside the batch, -1 if none
}

func newBatch() *batch {
	bt := &batch{lastMsg: -1}
	bt.buf = appendMessage(nil, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, bt.next(), nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
	return bt
}

func (bt *batch) next() uint32 {
	bt.seq++
	return bt.seq
}

// nfgen is the nfgenmsg header: family, version 0, resource id (big endian).
func nfgen(family uint8, res uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(res >> 8), byte(res)}
}

// appendMessage appends one netlink message; data must be 4-byte aligned.
func appendMessage(buf []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	var h [unix.NLMSG_HDRLEN]byte
	binary.NativeEndian.PutUint32(h[0:], uint32(len(h)+len(data)))
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
	buf = append(buf, h[:]...)
	return append(buf, data...)
}

// addRaw appends encoded messages (from record), renumbering them.
func (bt *batch) addRaw(msgs []byte) {
	for len(msgs) >= unix.NLMSG_HDRLEN {
		n := int(binary.NativeEndian.Uint32(msgs))
		off := len(bt.buf)
		bt.buf = append(bt.buf, msgs[:n]...)
		binary.NativeEndian.PutUint32(bt.buf[off+8:], bt.next())
		bt.lastMsg = off
		msgs = msgs[n:]
	}
}

// end closes the batch. The last message asks for an acknowledgement:
// errors are reported for every failing message anyway, and the kernel
// acknowledges in message order after the transaction is committed or
// aborted, so that one ack means the batch is done.
func (bt *batch) end() {
	if bt.lastMsg >= 0 {
		f := binary.NativeEndian.Uint16(bt.buf[bt.lastMsg+6:])
		binary.NativeEndian.PutUint16(bt.buf[bt.lastMsg+6:], f|unix.NLM_F_ACK)
	}
	bt.buf = appendMessage(bt.buf, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, bt.next(), nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
}

// lastSeq is the sequence number of the message whose ack ends the batch.
func (bt *batch) lastSeq() uint32 {
	if bt.lastMsg < 0 {
		return 0
	}
	return binary.NativeEndian.Uint32(bt.buf[bt.lastMsg+8:])
}

// attr appends a netlink attribute, padded to 4 bytes.
func attr(buf []byte, typ uint16, data []byte) []byte {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	buf = append(buf, h[:]...)
	buf = append(buf, data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	return buf
}

// nest opens a nested attribute; close it with closeNest(buf, off).
func nest(buf []byte, typ uint16) ([]byte, int) {
	off := len(buf)
	return attr(buf, typ|unix.NLA_F_NESTED, nil), off
}

func closeNest(buf []byte, off int) {
	binary.NativeEndian.PutUint16(buf[off:], uint16(len(buf)-off))
}

// elementWriter fills NEWSETELEM (or destroy) messages for one set,
// starting a new message whenever the element list would outgrow one
// attribute.
type elementWriter struct {
	bt         *batch
	typ, flags uint16
	table, set string
	msgOff     int // -1 when no message is open
	listOff    int
	n          int
}

func (bt *batch) elements(table, set string, typ uint16) *elementWriter {
	flags := uint16(unix.NLM_F_REQUEST)
	if typ == unix.NFT_MSG_NEWSETELEM {
		// No NLM_F_EXCL: adding an element already there is not an error.
		flags |= unix.NLM_F_CREATE
	}
	return &elementWriter{bt: bt, typ: typ, flags: flags, table: table, set: set, msgOff: -1}
}

func (w *elementWriter) open() {
	bt := w.bt
	w.msgOff = len(bt.buf)
	bt.buf = appendMessage(bt.buf, unix.NFNL_SUBSYS_NFTABLES<<8|w.typ, w.flags, bt.next(), nfgen(unix.NFPROTO_INET, 0))
	bt.buf = attr(bt.buf, unix.NFTA_SET_ELEM_LIST_TABLE, cstring(w.table))
	bt.buf = attr(bt.buf, unix.NFTA_SET_ELEM_LIST_SET, cstring(w.set))
	bt.buf, w.listOff = nest(bt.buf, unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	bt.lastMsg = w.msgOff
}

func (w *elementWriter) close() {
	if w.msgOff < 0 {
		return
	}
	closeNest(w.bt.buf, w.listOff)
	binary.NativeEndian.PutUint32(w.bt.buf[w.msgOff:], uint32(len(w.bt.buf)-w.msgOff))
	w.msgOff = -1
}

// add writes one element: key (4 or 16 bytes, network order), flagged as
// an interval end if end.
func (w *elementWriter) add(key []byte, end bool) {
	if w.msgOff >= 0 && len(w.bt.buf)-w.listOff > maxElemsBytes {
		w.close()
	}
	if w.msgOff < 0 {
		w.open()
	}
	b := w.bt.buf
	b, elem := nest(b, unix.NFTA_LIST_ELEM)
	b, k := nest(b, unix.NFTA_SET_ELEM_KEY)
	b = attr(b, unix.NFTA_DATA_VALUE, key)
	closeNest(b, k)
	if end {
		var f [4]byte
		binary.BigEndian.PutUint32(f[:], unix.NFT_SET_ELEM_INTERVAL_END)
		b = attr(b, unix.NFTA_SET_ELEM_FLAGS, f[:])
	}
	closeNest(b, elem)
	w.bt.buf = b
	w.n++
}

func cstring(s string) []byte { return append([]byte(s), 0) }

// addElements writes the singles to the hash sets and the ranges to the
// interval sets, as messages of type typ, and returns the element count.
// An interval is a start element and an end element one past its last
// address; an interval reaching the family's last address has no end.
func (bt *batch) addElements(table string, singles []netip.Addr, ranges []netipx.IPRange, typ uint16) int {
	n := 0
	for _, fam := range []struct {
		is4       bool
		addr, net string
	}{{true, setAddr4, setNet4}, {false, setAddr6, setNet6}} {
		w := bt.elements(table, fam.addr, typ)
		for _, a := range singles {
			if a.Is4() == fam.is4 {
				w.add(a.AsSlice(), false)
			}
		}
		w.close()
		n += w.n
		w = bt.elements(table, fam.net, typ)
		for _, r := range ranges {
			if r.From().Is4() != fam.is4 {
				continue
			}
			w.add(r.From().AsSlice(), false)
			if next := r.To().Next(); next.IsValid() {
				w.add(next.AsSlice(), true)
			}
		}
		w.close()
		n += w.n
	}
	return n
}

// send writes the batch in one sendmsg (one skb: the kernel only commits
// a batch that arrives whole) and waits for the final acknowledgement.
func (b *Backend) send(ctx context.Context, bt *batch) error {
	if bt.lastMsg < 0 {
		return nil
	}
	c, err := b.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(d); err != nil {
			return err
		}
	}
	// Errors echo only the header, not our 60 KiB element messages, and
	// carry the kernel's explanation.
	_ = c.SetOption(netlink.CapAcknowledge, true)
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		// The send buffer must hold the whole batch; FORCE passes
		// net.core.wmem_max (we are root, as nftables requires anyway).
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, len(bt.buf)+(64<<10))
	})
	if err := errors.Join(cerr, serr); err != nil {
		return fmt.Errorf("netlink send buffer of %d bytes: %w", len(bt.buf), err)
	}
	werr := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), bt.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err := errors.Join(werr, serr); err != nil {
		return fmt.Errorf("netlink send of %d bytes: %w", len(bt.buf), err)
	}
	last := bt.lastSeq()
	for {
		msgs, err := c.Receive()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == netlink.Error && m.Header.Sequence == last {
				return nil
			}
		}
	}
}
