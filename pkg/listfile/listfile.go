// Package listfile parses blocklist files: one address, prefix or address
// range per line, with `#` and `;` starting a comment. Spamhaus DROP
// ("1.10.16.0/20 ; SBL256894") and FireHOL netset files load as they are.
//
// A bad line never aborts the parse: it is recorded in [Result.Rejected]
// with its file name, line number, text and reason, and the next line is
// read. Only an I/O error from the reader ends [Parse] early.
//
// Prefixes broader than /8 (IPv4) or /32 (IPv6) are refused unless the
// source explicitly allows them ([Options.AllowBroad]): one typo in a feed
// must not drop a sixteenth of the Internet.
package listfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// Defaults for the zero [Options].
const (
	DefaultMaxBits4     = 8
	DefaultMaxBits6     = 32
	DefaultMaxLineBytes = 4096
)

// Options tune what [Parse] accepts. The zero value is the safe default.
type Options struct {
	// MaxBits4 is the broadest IPv4 prefix accepted, as a prefix length:
	// with 8, a /8 loads and a /7 is rejected. 0 means DefaultMaxBits4.
	MaxBits4 int
	// MaxBits6 is the same for IPv6; 0 means DefaultMaxBits6.
	MaxBits6 int
	// AllowBroad accepts prefixes of any width (the source says it means
	// it), ignoring MaxBits4 and MaxBits6.
	AllowBroad bool
	// MaxLineBytes rejects longer lines; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxRejected keeps at most this many LineErrors in Result.Rejected
	// (all are counted in Result.RejectedCount), so a garbage feed cannot
	// make the report large; 0 keeps them all.
	MaxRejected int
}

func (o Options) maxBits4() int {
	if o.MaxBits4 <= 0 {
		return DefaultMaxBits4
	}
	return o.MaxBits4
}

func (o Options) maxBits6() int {
	if o.MaxBits6 <= 0 {
		return DefaultMaxBits6
	}
	return o.MaxBits6
}

func (o Options) maxLine() int {
	if o.MaxLineBytes <= 0 {
		return DefaultMaxLineBytes
	}
	return o.MaxLineBytes
}

// Result is what one list file held.
type Result struct {
	// Prefixes in file order, duplicates kept; a single address is a /32
	// or /128 prefix and an address range the prefixes covering it exactly.
	// IPv4-mapped IPv6 addresses are unmapped to IPv4.
	Prefixes []netip.Prefix
	// Rejected lines, in file order (the first Options.MaxRejected).
	Rejected []LineError
	// RejectedCount counts every rejected line.
	RejectedCount int
	// Lines is the number of lines read, comments and blanks included.
	Lines int
}

// LineError is one rejected line.
type LineError struct {
	File   string // the name given to Parse ("-" for stdin)
	Line   int    // 1-based
	Text   string // the line, trimmed, cut to 120 bytes
	Reason string // why it was rejected, in words
}

func (e LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Reason, e.Text)
}

// maxTextBytes bounds LineError.Text so a hostile file cannot make the
// rejection report large.
const maxTextBytes = 120

// Parse reads a list file from r. name identifies it in rejected lines.
// The returned error is only ever a read error from r; the Result holds
// everything read up to that point.
func Parse(r io.Reader, name string, opts Options) (Result, error) {
	var ps []netip.Prefix
	res, err := Scan(r, name, opts, func(p netip.Prefix) { ps = append(ps, p) })
	res.Prefixes = ps
	return res, err
}

// Scan is Parse for large files: each accepted prefix goes to fn as it is
// read instead of into Result.Prefixes, which stays empty.
func Scan(r io.Reader, name string, opts Options, fn func(netip.Prefix)) (Result, error) {
	maxLine := opts.maxLine()
	br := bufio.NewReaderSize(r, maxLine+1)
	var res Result
	for {
		line, tooLong, err := readLine(br, maxLine)
		if len(line) > 0 || tooLong || err == nil {
			res.Lines++
			if tooLong {
				res.reject(name, line, fmt.Sprintf("line longer than %d bytes", maxLine), opts)
			} else {
				res.parseLine(name, line, opts, fn)
			}
		}
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("%s: line %d: read: %w", name, res.Lines+1, err)
		}
	}
}

// readLine returns the next line without its newline. A line longer than
// max is consumed entirely and reported as tooLong with its first bytes.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		head := append([]byte(nil), line[:min(len(line), maxTextBytes)]...)
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n')
		}
		return head, true, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) > max {
		return line[:min(len(line), maxTextBytes)], true, err
	}
	return line, false, err
}

func (res *Result) reject(name string, line []byte, reason string, opts Options) {
	res.RejectedCount++
	if opts.MaxRejected > 0 && len(res.Rejected) >= opts.MaxRejected {
		return
	}
	text := strings.ToValidUTF8(string(bytes.TrimSpace(line)), "\uFFFD")
	if len(text) > maxTextBytes {
		// Cutting may split a rune; dropping the broken tail keeps it UTF-8.
		text = strings.ToValidUTF8(text[:maxTextBytes], "")
	}
	res.Rejected = append(res.Rejected, LineError{File: name, Line: res.Lines, Text: text, Reason: reason})
}

func (res *Result) parseLine(name string, line []byte, opts Options, fn func(netip.Prefix)) {
	field := line
	if i := bytes.IndexAny(field, "#;"); i >= 0 {
		field = field[:i]
	}
	field = bytes.TrimSpace(field)
	if len(field) == 0 {
		return
	}
	if i := bytes.IndexAny(field, " \t\r\v\f"); i >= 0 {
		res.reject(name, line, "unexpected text after the address", opts)
		return
	}
	if p, ok := fastAddr(field); ok {
		fn(p)
		return
	}
	ps, err := parseEntry(string(field), opts)
	if err != nil {
		res.reject(name, line, err.Error(), opts)
		return
	}
	for _, p := range ps {
		fn(p)
	}
}

var errZone = errors.New("address has a zone (%...), which a blocklist cannot use")

// ParseEntry parses one entry as it would appear on a line: an address,
// a prefix or a range "FROM-TO", with the width limits of opts.
func ParseEntry(s string, opts Options) ([]netip.Prefix, error) {
	return parseEntry(strings.TrimSpace(s), opts)
}

func parseEntry(s string, opts Options) ([]netip.Prefix, error) {
	switch {
	case strings.IndexByte(s, '/') >= 0:
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid prefix: %w", unwrapParse(err))
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if m := p.Masked(); m != p {
			return nil, fmt.Errorf("prefix has host bits set (did you mean %s?)", m)
		}
		if err := checkWidth(p, opts); err != nil {
			return nil, err
		}
		return []netip.Prefix{p}, nil
	case strings.IndexByte(s, '-') >= 0:
		from, to, _ := strings.Cut(s, "-")
		a, err := parseAddr(from)
		if err != nil {
			return nil, fmt.Errorf("invalid range start: %w", err)
		}
		b, err := parseAddr(to)
		if err != nil {
			return nil, fmt.Errorf("invalid range end: %w", err)
		}
		r := netipx.IPRangeFrom(a, b)
		if !r.IsValid() {
			return nil, fmt.Errorf("invalid range: %s is not before %s in the same family", a, b)
		}
		ps := r.Prefixes()
		for _, p := range ps {
			if err := checkWidth(p, opts); err != nil {
				return nil, fmt.Errorf("range %s: %w", r, err)
			}
		}
		return ps, nil
	default:
		a, err := parseAddr(s)
		if err != nil {
			return nil, err
		}
		return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
	}
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid address: %w", unwrapParse(err))
	}
	if a.Zone() != "" {
		return netip.Addr{}, errZone
	}
	return a.Unmap(), nil
}

// unwrapParse drops netip's echo of the input (the line is already quoted
// in the LineError) and keeps its explanation.
func unwrapParse(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		return errors.New(msg[i+3:])
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return errors.New(msg[i+2:])
	}
	return err
}

func checkWidth(p netip.Prefix, opts Options) error {
	if p.Addr().Zone() != "" {
		return errZone
	}
	if opts.AllowBroad {
		return nil
	}
	limit := opts.maxBits6()
	if p.Addr().Is4() {
		limit = opts.maxBits4()
	}
	if p.Bits() < limit {
		return fmt.Errorf("prefix /%d is broader than /%d (this source does not allow broad prefixes)", p.Bits(), limit)
	}
	return nil
}

// fastAddr parses a plain dotted-quad IPv4 address without allocating,
// the bulk of every feed; anything else takes the general path.
func fastAddr(b []byte) (netip.Prefix, bool) {
	var a [4]byte
	i := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Prefix{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
			v = v*10 + int(b[i]-'0')
			i++
		}
		// No empty fields, no leading zeros (netip refuses them too, as
		// they read as octal to some tools), no value above 255.
		if i == start || v > 255 || (b[start] == '0' && i-start > 1) {
			return netip.Prefix{}, false
		}
		a[part] = byte(v)
	}
	if i != len(b) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 32), true
}
