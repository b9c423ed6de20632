package server

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// special is address space no ban may touch: banning it cuts a host off
// from itself or its link, or is meaningless.
var special = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\", 0.0.0.0/8)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast (255.255.255.255)"},
	{netip.MustParsePrefix("::/128"), "unspecified (::)"},
	{netip.MustParsePrefix("::1/128"), "loopback (::1)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// ErrNotBannable is wrapped by CheckBannable's refusals.
var ErrNotBannable = errors.New("not bannable")

// CheckBannable refuses a prefix that overlaps unspecified, loopback,
// link-local, multicast or broadcast space. It is the one check that ban,
// import, reports and each feed entry share; the policy's width bounds
// and the fleet's own addresses are checked by the server on top of it.
func CheckBannable(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: invalid prefix", ErrNotBannable)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("%s: %w: write IPv4-mapped addresses as IPv4", p, ErrNotBannable)
	}
	for _, s := range special {
		if s.p.Overlaps(p) {
			return fmt.Errorf("%s: %w: it overlaps %s space", p, ErrNotBannable, s.what)
		}
	}
	return nil
}

// MaxReasonLen bounds a reason, in bytes.
const MaxReasonLen = 200

// CheckReason refuses reasons longer than MaxReasonLen bytes, not UTF-8,
// or holding control or format characters (which could rewrite a
// terminal's line when listed).
func CheckReason(r string) error {
	if len(r) > MaxReasonLen {
		return fmt.Errorf("reason: longer than %d bytes", MaxReasonLen)
	}
	if !utf8.ValidString(r) {
		return errors.New("reason: not UTF-8")
	}
	if i := strings.IndexFunc(r, func(c rune) bool { return c != ' ' && !unicode.IsPrint(c) }); i >= 0 {
		c, _ := utf8.DecodeRuneInString(r[i:])
		return fmt.Errorf("reason: control or format character %U at byte %d; want printable text", c, i)
	}
	return nil
}
