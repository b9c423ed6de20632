// Package wire is the on-the-wire format between blocklistd and its clients:
// a compact binary encoding of blocklist snapshots and deltas, and the JSON
// bodies of reports and admin requests.
//
// # Update encoding
//
// An update body is the 4-byte magic "RBL1", one byte saying how the rest
// is compressed (0: not at all, for small deltas, so that waking thousands
// of agents costs no decompressor each; 1: gzip), then:
//
//	flags     byte      bit 0: full snapshot
//	version   uvarint
//	section   entries (full) or additions (delta)
//	section   removals (delta only)
//
// A section is the IPv4 prefixes, sorted, as uvarint count then per prefix
// one byte of prefix length and the uvarint difference from the previous
// address (as a 32-bit number); then the IPv6 prefixes as uvarint count and
// per prefix one byte of prefix length and the ceil(bits/8) leading bytes of
// the masked address. A million IPv4 host entries take about 3 MB before
// gzip.
//
// # What a delta means
//
// A delta names entries, not addresses: the receiver's entries become its
// entries with every prefix of Remove taken out (matched exactly: removing
// 10.0.0.0/24 leaves an entry 10.0.0.7/32 alone), then every prefix of Add
// put in, so a prefix in both lists stays. Applied to the entries at the
// version the receiver announced, it gives exactly the entries of the full
// snapshot at the new Version. blocklistd's entries never overlap (a
// decision covered by a wider one is not published; see blocklist/server),
// and its deltas never name a prefix in both lists; receivers must not
// rely on either. The agent turns the change of entries into a change of
// blocked addresses (firewall.Delta: removals, then additions) that
// re-adds every remaining entry overlapping a removed one.
package wire

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
)

// MediaType is the Content-Type of an encoded update.
const MediaType = "application/vnd.rampart.blocklist-update"

// VersionHeader carries the server's current version on every sync answer.
const VersionHeader = "Rampart-Version"

// Paths of the blocklistd HTTP API.
const (
	PathSync    = "/v1/sync"
	PathReport  = "/v1/report"
	PathBan     = "/v1/admin/ban"
	PathUnban   = "/v1/admin/unban"
	PathAllow   = "/v1/admin/allow"
	PathUnallow = "/v1/admin/unallow"
	PathList    = "/v1/admin/list"
)

// MaxBody is the largest JSON request body blocklistd accepts.
const MaxBody = 4096

var magic = []byte("RBL1")

// ErrFormat is returned for any body that is not a well-formed update.
var ErrFormat = errors.New("malformed blocklist update")

// Update is a full snapshot (Entries) or a delta (Add, Remove) at Version.
// A delta takes Remove out of the entries, then puts Add in (see the
// package documentation).
type Update struct {
	Version uint64
	Full    bool
	Entries []netip.Prefix
	Add     []netip.Prefix
	Remove  []netip.Prefix
}

// Encode writes u to w. Prefixes must be masked; they are sorted on a copy.
// Bodies under 512 bytes go uncompressed.
func Encode(w io.Writer, u Update, level int) error {
	var raw bytes.Buffer
	bw := bufio.NewWriterSize(&raw, 64<<10)
	var flags byte
	if u.Full {
		flags = 1
	}
	bw.WriteByte(flags)
	writeUvarint(bw, u.Version)
	if u.Full {
		if err := writeSection(bw, u.Entries); err != nil {
			return err
		}
	} else {
		if err := writeSection(bw, u.Add); err != nil {
			return err
		}
		if err := writeSection(bw, u.Remove); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if raw.Len() < 512 {
		_, err := w.Write(append(append(append([]byte{}, magic...), compressNone), raw.Bytes()...))
		return err
	}
	if _, err := w.Write(append(append([]byte{}, magic...), compressGzip)); err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

const (
	compressNone byte = 0
	compressGzip byte = 1
)

// Bytes is Encode into a new slice at gzip.DefaultCompression.
func Bytes(u Update) []byte {
	var b bytes.Buffer
	_ = Encode(&b, u, gzip.DefaultCompression) // a bytes.Buffer never fails
	return b.Bytes()
}

func writeUvarint(w *bufio.Writer, v uint64) {
	var buf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(buf[:], v)
	w.Write(buf[:n])
}

func writeSection(w *bufio.Writer, ps []netip.Prefix) error {
	// IPv4 prefixes sort as integers (address, then length): a million of
	// them sort in a fraction of the time netip comparisons take.
	var v4 []uint64
	var v6 []netip.Prefix
	for _, p := range ps {
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("wire: prefix %v is not a masked prefix", p)
		}
		if p.Addr().Is4() {
			a := p.Addr().As4()
			v4 = append(v4, uint64(binary.BigEndian.Uint32(a[:]))<<6|uint64(p.Bits()))
		} else {
			v6 = append(v6, p)
		}
	}
	slices.Sort(v4)
	slices.SortFunc(v6, comparePrefix)
	writeUvarint(w, uint64(len(v4)))
	var prev uint32
	for _, k := range v4 {
		cur := uint32(k >> 6)
		w.WriteByte(byte(k & 63))
		writeUvarint(w, uint64(cur-prev))
		prev = cur
	}
	writeUvarint(w, uint64(len(v6)))
	for _, p := range v6 {
		a := p.Addr().As16()
		w.WriteByte(byte(p.Bits()))
		w.Write(a[:(p.Bits()+7)/8])
	}
	return nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Decode reads one update from r, refusing more than maxEntries prefixes in
// total (0 means 1<<24), so a hostile or broken server cannot exhaust memory.
func Decode(r io.Reader, maxEntries int) (Update, error) {
	if maxEntries <= 0 {
		maxEntries = 1 << 24
	}
	var m [5]byte
	if _, err := io.ReadFull(r, m[:]); err != nil || !bytes.Equal(m[:4], magic) {
		return Update{}, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	var br *bufio.Reader
	switch m[4] {
	case compressNone:
		br = bufio.NewReader(r)
	case compressGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return Update{}, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	default:
		return Update{}, fmt.Errorf("%w: unknown compression %d", ErrFormat, m[4])
	}
	d := decoder{r: br, left: maxEntries}
	flags, err := br.ReadByte()
	if err != nil {
		return Update{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if flags&^1 != 0 {
		return Update{}, fmt.Errorf("%w: unknown flags %#x", ErrFormat, flags)
	}
	var u Update
	u.Full = flags&1 == 1
	if u.Version, err = binary.ReadUvarint(br); err != nil {
		return Update{}, fmt.Errorf("%w: version: %v", ErrFormat, err)
	}
	if u.Full {
		if u.Entries, err = d.section(); err != nil {
			return Update{}, err
		}
	} else {
		if u.Add, err = d.section(); err != nil {
			return Update{}, err
		}
		if u.Remove, err = d.section(); err != nil {
			return Update{}, err
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return Update{}, fmt.Errorf("%w: trailing data", ErrFormat)
	}
	return u, nil
}

type decoder struct {
	r    *bufio.Reader
	left int
}

func (d *decoder) count() (int, error) {
	n, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, fmt.Errorf("%w: count: %v", ErrFormat, err)
	}
	if n > uint64(d.left) {
		return 0, fmt.Errorf("%w: more than the allowed %d entries", ErrFormat, d.left)
	}
	d.left -= int(n)
	return int(n), nil
}

func (d *decoder) section() ([]netip.Prefix, error) {
	n4, err := d.count()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, min(n4, 1<<16))
	var prev uint64
	for range n4 {
		bits, err := d.r.ReadByte()
		if err != nil || bits > 32 {
			return nil, fmt.Errorf("%w: IPv4 prefix length", ErrFormat)
		}
		delta, err := binary.ReadUvarint(d.r)
		if err != nil || prev+delta > 0xffffffff {
			return nil, fmt.Errorf("%w: IPv4 address", ErrFormat)
		}
		prev += delta
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(prev))
		p := netip.PrefixFrom(netip.AddrFrom4(a), int(bits))
		if p != p.Masked() {
			return nil, fmt.Errorf("%w: %v has host bits set", ErrFormat, p)
		}
		out = append(out, p)
	}
	n6, err := d.count()
	if err != nil {
		return nil, err
	}
	for range n6 {
		bits, err := d.r.ReadByte()
		if err != nil || bits > 128 {
			return nil, fmt.Errorf("%w: IPv6 prefix length", ErrFormat)
		}
		var a [16]byte
		if _, err := io.ReadFull(d.r, a[:(int(bits)+7)/8]); err != nil {
			return nil, fmt.Errorf("%w: IPv6 address: %v", ErrFormat, err)
		}
		p := netip.PrefixFrom(netip.AddrFrom16(a), int(bits))
		if p != p.Masked() {
			return nil, fmt.Errorf("%w: %v has host bits set", ErrFormat, p)
		}
		out = append(out, p)
	}
	return out, nil
}
