package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Matcher finds the offending address in one log line (without its line
// ending). ok is false when the line is not an offence or names no valid
// address.
type Matcher interface {
	Match(line []byte) (addr netip.Addr, ok bool)
}

// ParseAddr reads an address as logs print it: "192.0.2.1",
// "2001:db8::1", "192.0.2.1:51234", "[2001:db8::1]:51234" or an
// IPv4-mapped IPv6 address. Zones, the unspecified address and multicast
// are refused: no client connects from them.
func ParseAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a, true
}

const addrRE = `[0-9A-Fa-f:.]+`

// sshdPatterns match OpenSSH's failure messages. Each ends at the end of
// the line, where sshd writes the address after anything the client
// chose, so a user name such as "x from 192.0.2.1 port 22" cannot make
// the detector blame someone else.
var sshdPatterns = []string{
	`Failed \S+ for (?:invalid user )?.* from (` + addrRE + `) port \d+ ssh2(?:: \S+ \S+)?$`,
	`Invalid user .* from (` + addrRE + `) port \d+$`,
	`Connection (?:closed|reset) by (?:authenticating|invalid) user .* (` + addrRE + `) port \d+ \[preauth\]$`,
	`Disconnected from (?:authenticating|invalid) user .* (` + addrRE + `) port \d+ \[preauth\]$`,
	`maximum authentication attempts exceeded for (?:invalid user )?.* from (` + addrRE + `) port \d+ ssh2 \[preauth\]$`,
	`authentication failure; logname=\S* uid=\d+ euid=\d+ tty=\S* ruser=\S* rhost=(` + addrRE + `)(?:\s|$)`,
}

// SSHD matches OpenSSH's authentication failures in auth.log or syslog
// lines, or in journald's MESSAGE field.
type SSHD struct {
	res []*regexp.Regexp
}

// NewSSHD returns the OpenSSH matcher.
func NewSSHD() *SSHD {
	s := &SSHD{}
	for _, p := range sshdPatterns {
		s.res = append(s.res, regexp.MustCompile(p))
	}
	return s
}

// Match implements [Matcher].
func (s *SSHD) Match(line []byte) (netip.Addr, bool) {
	line = bytes.TrimRight(line, "\r\n ")
	for _, re := range s.res {
		if m := re.FindSubmatch(line); m != nil {
			return ParseAddr(string(m[1]))
		}
	}
	return netip.Addr{}, false
}

// Journal unwraps journald's JSON export (journalctl -o json) and hands the
// MESSAGE field to Inner. When Identifiers is set, only entries whose
// SYSLOG_IDENTIFIER or _COMM is one of them count, so another program
// cannot forge an sshd line into the journal.
type Journal struct {
	Inner       Matcher
	Identifiers []string
}

// Match implements [Matcher].
func (j Journal) Match(line []byte) (netip.Addr, bool) {
	var e struct {
		Message    json.RawMessage `json:"MESSAGE"`
		Identifier string          `json:"SYSLOG_IDENTIFIER"`
		Comm       string          `json:"_COMM"`
	}
	if json.Unmarshal(line, &e) != nil || len(e.Message) == 0 {
		return netip.Addr{}, false
	}
	if len(j.Identifiers) > 0 && !contains(j.Identifiers, e.Identifier) && !contains(j.Identifiers, e.Comm) {
		return netip.Addr{}, false
	}
	var msg []byte
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		msg = []byte(s)
	} else if json.Unmarshal(e.Message, &msg) != nil {
		// journald writes a message that is not UTF-8 as an array of
		// byte values; []byte would expect base64, so decode by hand.
		var b []int
		if json.Unmarshal(e.Message, &b) != nil {
			return netip.Addr{}, false
		}
		msg = make([]byte, 0, len(b))
		for _, v := range b {
			if v < 0 || v > 255 {
				return netip.Addr{}, false
			}
			msg = append(msg, byte(v))
		}
	}
	return j.Inner.Match(msg)
}

func contains(list []string, s string) bool {
	if s == "" {
		return false
	}
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// JSONFields matches JSON-lines records (one object per line) whose fields
// equal Fields, and takes the address from AddrField. Field names may be
// dotted paths into nested objects ("client.ip"). Values that are not
// strings are compared in their JSON form (true, 3).
//
// The bastion's audit log is the model:
//
//	{"type":"auth","result":"failure","source":"192.0.2.7:51234",...}
type JSONFields struct {
	Fields    map[string]string
	AddrField string
}

// Match implements [Matcher].
func (j JSONFields) Match(line []byte) (netip.Addr, bool) {
	var rec map[string]any
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if d.Decode(&rec) != nil {
		return netip.Addr{}, false
	}
	for k, want := range j.Fields {
		v, ok := lookup(rec, k)
		if !ok || v != want {
			return netip.Addr{}, false
		}
	}
	v, ok := lookup(rec, j.AddrField)
	if !ok {
		return netip.Addr{}, false
	}
	return ParseAddr(v)
}

func lookup(rec map[string]any, path string) (string, bool) {
	var cur any = rec
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return fmt.Sprint(v), true
	}
	return "", false
}

// Regex matches lines against a pattern with a group named addr that
// captures the client's address; every matching line is an offence.
type Regex struct {
	re  *regexp.Regexp
	idx int
}

// NewRegex compiles pattern, which must have a (?P<addr>...) group.
func NewRegex(pattern string) (*Regex, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	idx := re.SubexpIndex("addr")
	if idx < 0 {
		return nil, fmt.Errorf("pattern %q: no (?P<addr>...) group for the client address", pattern)
	}
	return &Regex{re: re, idx: idx}, nil
}

// Match implements [Matcher].
func (r *Regex) Match(line []byte) (netip.Addr, bool) {
	m := r.re.FindSubmatch(bytes.TrimRight(line, "\r\n"))
	if m == nil {
		return netip.Addr{}, false
	}
	return ParseAddr(string(m[r.idx]))
}

// Presets for access logs. Both take the address from the start of the
// record, which the server writes, and count authentication failures and
// refusals (401, 403; 444 is nginx closing the connection; 429 HAProxy's
// rate limit).
const (
	// NginxPattern matches nginx's default "combined" format.
	NginxPattern = `^(?P<addr>` + addrRE + `) \S+ \S+ \[[^\]]*\] "[^"]*" (?:401|403|444) `
	// HAProxyPattern matches HAProxy's "option httplog" format as syslog
	// writes it ("haproxy[pid]: client:port [date] frontend backend/server
	// timers status ...").
	HAProxyPattern = `haproxy\[\d+\]: (?P<addr>` + addrRE + `):\d+ \[[^\]]*\] \S+ \S+ [-\d/+]+ (?:401|403|429) `
)
