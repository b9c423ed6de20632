//go:build linux

package nftables

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ipset(t testing.TB, ss ...string) *netipx.IPSet {
	t.Helper()
	var b netipx.IPSetBuilder
	for _, s := range ss {
		b.AddPrefix(netip.MustParsePrefix(s))
	}
	set, err := b.IPSet()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// messages splits an encoded batch into netlink messages, checking every
// length on the way.
func messages(t *testing.T, buf []byte) []netlink.Message {
	t.Helper()
	var msgs []netlink.Message
	for len(buf) > 0 {
		if len(buf) < unix.NLMSG_HDRLEN {
			t.Fatalf("%d trailing bytes", len(buf))
		}
		n := int(binary.NativeEndian.Uint32(buf))
		if n < unix.NLMSG_HDRLEN || n > len(buf) || n%4 != 0 {
			t.Fatalf("bad message length %d (%d left)", n, len(buf))
		}
		var m netlink.Message
		if err := m.UnmarshalBinary(buf[:n]); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		buf = buf[n:]
	}
	return msgs
}

var msgNames = map[uint16]string{
	unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE",
	unix.NFT_MSG_NEWCHAIN: "NEWCHAIN", unix.NFT_MSG_NEWRULE: "NEWRULE",
	unix.NFT_MSG_NEWSET: "NEWSET", unix.NFT_MSG_NEWSETELEM: "NEWSETELEM",
	unix.NFT_MSG_DELSETELEM: "DELSETELEM",
}

// dump renders a batch one message per line: type, flags, sequence, and
// for element messages the decoded elements; other messages as hex.
func dump(t *testing.T, buf []byte) string {
	t.Helper()
	var b strings.Builder
	for _, m := range messages(t, buf) {
		typ := uint16(m.Header.Type)
		name := fmt.Sprintf("0x%x", typ)
		switch {
		case typ == unix.NFNL_MSG_BATCH_BEGIN:
			name = "BATCH_BEGIN"
		case typ == unix.NFNL_MSG_BATCH_END:
			name = "BATCH_END"
		case typ>>8 == unix.NFNL_SUBSYS_NFTABLES:
			name = msgNames[typ&0xff]
		}
		fmt.Fprintf(&b, "%s seq=%d flags=%#x", name, m.Header.Sequence, uint16(m.Header.Flags))
		if name == "NEWSETELEM" || name == "DELSETELEM" {
			b.WriteString(" " + decodeElems(t, m.Data[4:]))
		} else if len(m.Data) > 4 {
			fmt.Fprintf(&b, " %x", m.Data)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func decodeElems(t *testing.T, data []byte) string {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		t.Fatal(err)
	}
	var table, set string
	var elems []string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_TABLE:
			table = ad.String()
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			if len(ad.Bytes()) > maxElemsBytes+64 {
				t.Errorf("element list of %d bytes", len(ad.Bytes()))
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					var key netip.Addr
					end := false
					list.Nested(func(e *netlink.AttributeDecoder) error {
						e.ByteOrder = binary.BigEndian
						for e.Next() {
							switch e.Type() {
							case unix.NFTA_SET_ELEM_KEY:
								e.Nested(func(k *netlink.AttributeDecoder) error {
									for k.Next() {
										key, _ = netip.AddrFromSlice(k.Bytes())
									}
									return nil
								})
							case unix.NFTA_SET_ELEM_FLAGS:
								end = e.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
							}
						}
						return nil
					})
					s := key.String()
					if end {
						s += "(end)"
					}
					elems = append(elems, s)
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	if len(elems) > 8 {
		elems = append(elems[:4], fmt.Sprintf("...%d more...", len(elems)-4))
	}
	return fmt.Sprintf("%s/%s [%s]", table, set, strings.Join(elems, " "))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func replaceBatch(t *testing.T, opts Options, rebuild bool, set *netipx.IPSet) []byte {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	singles, ranges := splitRanges(set.Ranges())
	head, err := b.layout.replaceHead(rebuild, opts.Reject, [2]int{len(singles), 0})
	if err != nil {
		t.Fatal(err)
	}
	bt := newBatch()
	bt.addRaw(head)
	bt.addElements(b.opts.Table, singles, ranges, unix.NFT_MSG_NEWSETELEM)
	bt.end()
	return bt.buf
}

// The set mixes single addresses (hash sets) with ranges (interval sets),
// including one that runs to the last IPv4 address and so has no end
// element.
var goldenSet = []string{"192.0.2.1/32", "198.51.100.0/24", "203.0.113.0/25", "255.255.255.0/24", "2001:db8::1/128", "2001:db8:1::/48"}

func TestReplaceBatchRebuild(t *testing.T) {
	golden(t, "replace_rebuild.txt", dump(t, replaceBatch(t, Options{}, true, ipset(t, goldenSet...))))
}

func TestReplaceBatchFlush(t *testing.T) {
	golden(t, "replace_flush.txt", dump(t, replaceBatch(t, Options{}, false, ipset(t, goldenSet...))))
}

func TestReplaceBatchRejectForward(t *testing.T) {
	golden(t, "replace_reject_forward.txt", dump(t, replaceBatch(t, Options{Table: "edge", Reject: true, Forward: true}, true, ipset(t, "192.0.2.1/32"))))
}

func TestDeltaBatch(t *testing.T) {
	b, _ := New(Options{})
	b.ranges = ipset(t, "198.51.100.0/24", "203.0.113.0/25")
	plan, err := b.planDelta(deltaOf(
		[]string{"192.0.2.9/32", "203.0.113.128/25", "2001:db8::/64"},
		[]string{"198.51.100.7/32", "192.0.2.1/32", "10.0.0.0/30"},
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	bt := b.deltaBatch(plan)
	golden(t, "delta.txt", dump(t, bt.buf))
	if got, want := fmt.Sprint(plan.ranges.Prefixes()), "[198.51.100.0/30 198.51.100.4/31 198.51.100.6/32 198.51.100.8/29 198.51.100.16/28 198.51.100.32/27 198.51.100.64/26 198.51.100.128/25 203.0.113.0/24 2001:db8::/64]"; got != want {
		t.Errorf("intervals after delta = %s, want %s", got, want)
	}
}

// A large set is split over many element messages, each list within one
// netlink attribute, all inside one batch.
func TestBatchSplitsLargeSets(t *testing.T) {
	var sb netipx.IPSetBuilder
	a := netip.MustParseAddr("10.0.0.0")
	for i := 0; i < 20000; i++ {
		sb.Add(a)
		a = a.Next().Next()
	}
	set, _ := sb.IPSet()
	buf := replaceBatch(t, Options{}, false, set)
	msgs := messages(t, buf)
	if first, last := uint16(msgs[0].Header.Type), uint16(msgs[len(msgs)-1].Header.Type); first != unix.NFNL_MSG_BATCH_BEGIN || last != unix.NFNL_MSG_BATCH_END {
		t.Fatalf("batch framed by %#x..%#x", first, last)
	}
	elemMsgs, acks := 0, 0
	for i, m := range msgs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks++
			if i != len(msgs)-2 {
				t.Errorf("message %d of %d asks for an ack; only the last before BATCH_END should", i, len(msgs))
			}
		}
		if uint16(m.Header.Type) == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM {
			elemMsgs++
		}
	}
	if elemMsgs < 2 || acks != 1 {
		t.Errorf("%d element messages, %d acks", elemMsgs, acks)
	}
	out := dump(t, buf) // checks every attribute length
	if n := strings.Count(out, "NEWSETELEM"); n != elemMsgs {
		t.Errorf("dump shows %d element messages, want %d", n, elemMsgs)
	}
}
