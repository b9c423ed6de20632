package detect

import (
	"net/netip"
	"testing"
)

type matchCase struct {
	line string
	want string // "" means no match
}

func runMatchCases(t *testing.T, m Matcher, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		a, ok := m.Match([]byte(c.line))
		switch {
		case c.want == "" && ok:
			t.Errorf("%q matched %v, want no match", c.line, a)
		case c.want != "" && (!ok || a != netip.MustParseAddr(c.want)):
			t.Errorf("%q = %v, %v; want %s", c.line, a, ok, c.want)
		}
	}
}

func TestSSHD(t *testing.T) {
	runMatchCases(t, NewSSHD(), []matchCase{
		{"Nov 22 04:13:34 web1 sshd[812]: Failed password for root from 192.0.2.7 port 51234 ssh2", "192.0.2.7"},
		{"Nov 22 04:13:34 web1 sshd[812]: Failed password for invalid user admin from 2001:db8::7 port 51234 ssh2", "2001:db8::7"},
		{"Nov 22 04:13:34 web1 sshd[812]: Failed publickey for git from 198.51.100.3 port 40022 ssh2: ECDSA SHA256:abcdefghijk", "198.51.100.3"},
		{"Nov 22 04:13:34 web1 sshd[812]: Invalid user oracle from 203.0.113.50 port 33000", "203.0.113.50"},
		{"2026-11-22T04:13:34.123456+00:00 web1 sshd-session[99]: Connection closed by authenticating user root 192.0.2.8 port 4242 [preauth]", "192.0.2.8"},
		{"sshd[1]: Disconnected from invalid user test 192.0.2.9 port 22 [preauth]", "192.0.2.9"},
		{"sshd[1]: error: maximum authentication attempts exceeded for root from 192.0.2.10 port 2222 ssh2 [preauth]", "192.0.2.10"},
		{"sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root", "192.0.2.11"},
		{"sshd[1]: Failed password for root from ::ffff:192.0.2.12 port 1 ssh2", "192.0.2.12"},
		// Successful logins and unrelated lines.
		{"sshd[1]: Accepted publickey for deploy from 192.0.2.20 port 5000 ssh2: ED25519 SHA256:x", ""},
		{"sshd[1]: Server listening on 0.0.0.0 port 22.", ""},
		{"sshd[1]: Received disconnect from 192.0.2.21 port 5000:11: disconnected by user", ""},
		{"", ""},
		// The user name is the client's choice: it must not pick the address.
		{"sshd[1]: Invalid user x from 10.9.9.9 port 22 from 192.0.2.30 port 4444", "192.0.2.30"},
		{"sshd[1]: Failed password for invalid user a from 10.9.9.9 port 22 ssh2 from 192.0.2.31 port 4444 ssh2", "192.0.2.31"},
		{"sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.32  user=x rhost=10.9.9.9", "192.0.2.32"},
		// A name that tries to end the line early still leaves sshd's suffix last.
		{"sshd[1]: Invalid user 10.9.9.9 port 22 from 192.0.2.33 port 1", "192.0.2.33"},
		// Not addresses.
		{"sshd[1]: Failed password for root from 999.1.1.1 port 1 ssh2", ""},
		{"sshd[1]: Failed password for root from 0.0.0.0 port 1 ssh2", ""},
		{"sshd[1]: Failed password for root from fe80::1%eth0 port 1 ssh2", ""},
	})
}

func TestJournal(t *testing.T) {
	j := Journal{Inner: NewSSHD(), Identifiers: []string{"sshd", "sshd-session"}}
	runMatchCases(t, j, []matchCase{
		{`{"MESSAGE":"Failed password for root from 192.0.2.7 port 51234 ssh2","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd","__REALTIME_TIMESTAMP":"1763784814000000"}`, "192.0.2.7"},
		{`{"MESSAGE":"Invalid user a from 192.0.2.8 port 1","SYSLOG_IDENTIFIER":"sshd-session"}`, "192.0.2.8"},
		// journald writes non-UTF-8 messages as byte arrays: "Invalid user \xff from 192.0.2.9 port 1".
		{`{"MESSAGE":[73,110,118,97,108,105,100,32,117,115,101,114,32,255,32,102,114,111,109,32,49,57,50,46,48,46,50,46,57,32,112,111,114,116,32,49],"_COMM":"sshd"}`, "192.0.2.9"},
		// Another program cannot impersonate sshd.
		{`{"MESSAGE":"Failed password for root from 192.0.2.10 port 1 ssh2","SYSLOG_IDENTIFIER":"logger","_COMM":"logger"}`, ""},
		{`{"MESSAGE":"Failed password for root from 192.0.2.10 port 1 ssh2"}`, ""},
		{`{"MESSAGE":[300],"_COMM":"sshd"}`, ""},
		{`{"MESSAGE":null,"_COMM":"sshd"}`, ""},
		{`not json`, ""},
		{`[]`, ""},
	})
}

func TestJSONFields(t *testing.T) {
	j := JSONFields{Fields: map[string]string{"type": "auth", "result": "failure"}, AddrField: "source"}
	runMatchCases(t, j, []matchCase{
		{`{"time":"2026-11-22T04:13:34Z","type":"auth","result":"failure","source":"192.0.2.7","user":"alice"}`, "192.0.2.7"},
		{`{"type":"auth","result":"failure","source":"192.0.2.8:51234"}`, "192.0.2.8"},
		{`{"type":"auth","result":"failure","source":"[2001:db8::8]:51234"}`, "2001:db8::8"},
		{`{"type":"auth","result":"success","source":"192.0.2.9"}`, ""},
		{`{"type":"session","result":"failure","source":"192.0.2.9"}`, ""},
		{`{"type":"auth","result":"failure"}`, ""},
		{`{"type":"auth","result":"failure","source":42}`, ""},
		{`{"type":"auth","result":"failure","source":"not an address"}`, ""},
		{`{"type":"auth","result":["failure"],"source":"192.0.2.9"}`, ""},
		{`garbage`, ""},
	})
	nested := JSONFields{Fields: map[string]string{"event.kind": "login", "event.ok": "false", "tries": "3"}, AddrField: "client.ip"}
	runMatchCases(t, nested, []matchCase{
		{`{"event":{"kind":"login","ok":false},"tries":3,"client":{"ip":"198.51.100.4"}}`, "198.51.100.4"},
		{`{"event":{"kind":"login","ok":true},"tries":3,"client":{"ip":"198.51.100.4"}}`, ""},
		{`{"event":"login","client":{"ip":"198.51.100.4"}}`, ""},
	})
}

func TestRegexPresets(t *testing.T) {
	nginx, err := NewRegex(NginxPattern)
	if err != nil {
		t.Fatal(err)
	}
	runMatchCases(t, nginx, []matchCase{
		{`192.0.2.7 - - [22/Nov/2026:04:13:34 +0000] "GET /admin HTTP/1.1" 401 179 "-" "curl/8.0"`, "192.0.2.7"},
		{`2001:db8::7 - bob [22/Nov/2026:04:13:34 +0000] "POST /login HTTP/2.0" 403 0 "-" "x"`, "2001:db8::7"},
		{`192.0.2.8 - - [22/Nov/2026:04:13:34 +0000] "GET / HTTP/1.1" 200 612 "-" "x"`, ""},
		{`192.0.2.8 - - [22/Nov/2026:04:13:34 +0000] "GET /\x22 401 1 HTTP/1.1" 200 612 "-" "x"`, ""},
		{`192.0.2.9 - - [22/Nov/2026:04:13:34 +0000] "GET / HTTP/1.1" 200 612 "-" "\" 401 "`, ""},
	})
	haproxy, err := NewRegex(HAProxyPattern)
	if err != nil {
		t.Fatal(err)
	}
	runMatchCases(t, haproxy, []matchCase{
		{`Nov 22 04:13:34 lb1 haproxy[1234]: 192.0.2.7:51234 [22/Nov/2026:04:13:34.123] www~ app/web1 0/0/1/2/3 401 234 - - ---- 1/1/0/0/0 0/0 "GET /admin HTTP/1.1"`, "192.0.2.7"},
		{`haproxy[1]: 2001:db8::9:443 [22/Nov/2026:04:13:34.123] www~ app/web1 0/0/1/2/+3 429 234 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`, "2001:db8::9"},
		{`haproxy[1]: 192.0.2.7:51234 [22/Nov/2026:04:13:34.123] www~ app/web1 0/0/1/2/3 200 234 - - ---- 1/1/0/0/0 0/0 "GET /admin HTTP/1.1"`, ""},
	})
	if _, err := NewRegex(`^(\S+) 401`); err == nil {
		t.Error("a pattern without an addr group was accepted")
	}
	if _, err := NewRegex(`(?P<addr>`); err == nil {
		t.Error("an invalid pattern was accepted")
	}
}

func FuzzSSHD(f *testing.F) {
	f.Add("sshd[812]: Failed password for root from 192.0.2.7 port 51234 ssh2")
	f.Add("sshd[1]: Invalid user x from 10.9.9.9 port 22 from 192.0.2.30 port 4444")
	f.Add("sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root")
	m := NewSSHD()
	f.Fuzz(func(t *testing.T, line string) {
		checkMatch(t, m, line)
	})
}

func FuzzJournal(f *testing.F) {
	f.Add(`{"MESSAGE":"Failed password for root from 192.0.2.7 port 51234 ssh2","SYSLOG_IDENTIFIER":"sshd"}`)
	f.Add(`{"MESSAGE":[73,110,118,97,108],"_COMM":"sshd"}`)
	m := Journal{Inner: NewSSHD(), Identifiers: []string{"sshd"}}
	f.Fuzz(func(t *testing.T, line string) {
		checkMatch(t, m, line)
	})
}

func FuzzJSONFields(f *testing.F) {
	f.Add(`{"type":"auth","result":"failure","source":"192.0.2.8:51234"}`)
	f.Add(`{"type":"auth","result":"failure","source":{"ip":1}}`)
	m := JSONFields{Fields: map[string]string{"type": "auth", "result": "failure"}, AddrField: "source"}
	f.Fuzz(func(t *testing.T, line string) {
		checkMatch(t, m, line)
	})
}

func FuzzAccessLog(f *testing.F) {
	f.Add(`192.0.2.7 - - [22/Nov/2026:04:13:34 +0000] "GET /admin HTTP/1.1" 401 179 "-" "curl/8.0"`)
	f.Add(`haproxy[1]: 2001:db8::9:443 [22/Nov/2026:04:13:34.123] www~ app/web1 0/0/1/2/+3 429 234 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`)
	nginx, _ := NewRegex(NginxPattern)
	haproxy, _ := NewRegex(HAProxyPattern)
	f.Fuzz(func(t *testing.T, line string) {
		checkMatch(t, nginx, line)
		checkMatch(t, haproxy, line)
	})
}

// checkMatch holds every matcher to what the reporter relies on: a
// matched address is valid, unzoned, unmapped and unicast.
func checkMatch(t *testing.T, m Matcher, line string) {
	a, ok := m.Match([]byte(line))
	if !ok {
		return
	}
	if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
		t.Fatalf("%q matched unusable address %v", line, a)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "[2001:db8::1]:22", "192.0.2.1:22", "::ffff:1.2.3.4", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := ParseAddr(s)
		if ok && (!a.IsValid() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("ParseAddr(%q) = %v", s, a)
		}
	})
}
