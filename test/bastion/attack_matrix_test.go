package bastion_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/test/testenv"
)

// attackWorld is one real "bastion serve" (bstNewWorld with Process) with
// a record-only target db1 (a real sshd that trusts the recording user
// CA), the jump target sshd of bstNewWorld (w.Target, reached through
// rules only), a trusted user CA for certificates, a metrics listener and
// its recordings on a small tmpfs that a row fills.
type attackWorld struct {
	w        *bstWorld
	db       *recSSHD
	keygen   string
	caPath   string // trusted user CA private key (ssh-keygen)
	rogueCA  string // a CA the bastion does not trust
	certKey  string // the key the certificate rows certify
	metrics  string // the bastion's metrics listener
	recDir   string // on the tmpfs
	mnt      string
	listener net.Listener // a plain TCP service that greets and holds (channel flood)
}

// attackRow is one attack: who, what, how the bastion must refuse it and
// what the audit log must say. Each row logs in as its own user from its
// own loopback source address (127.0.0.100+i): TOTP codes are one-use per
// user and step, and brute-force counts are per source.
type attackRow struct {
	name    string
	user    bstUser // Name, Targets, NoKey
	attack  func(t *testing.T, m *attackWorld, r *attackRow) (string, error)
	reached bool   // a control row: the attack's allowed twin must work
	refused string // the client is told this ("" = only a failure)
	audit   map[string]any
	src     string // filled in: the row's source address
}

// attackMarker is what a command run on a target prints: a row that must
// be refused must never show it.
const attackMarker = "reached-the-target"

func TestAttackMatrix(t *testing.T) {
	testenv.RequireRoot(t)
	m := &attackWorld{keygen: testenv.Binary(t, "ssh-keygen")}
	keys, proxyCfg := recNewKeysWithCA(t)
	m.db = recStartSSHD(t, keys.userCA, keys.hostCA)
	dbPort := portOf(m.db.Addr)

	dir := t.TempDir()
	m.caPath = filepath.Join(dir, "user_ca")
	m.rogueCA = filepath.Join(dir, "rogue_ca")
	for _, p := range []string{m.caPath, m.rogueCA} {
		if out, err := exec.Command(m.keygen, "-q", "-t", "ed25519", "-N", "", "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	caPub, _ := os.ReadFile(m.caPath + ".pub")
	m.certKey = filepath.Join(dir, "id_cert")
	bstKey(t, m.certKey)
	recCA := filepath.Join(dir, "recording_ca")
	if err := os.WriteFile(recCA, []byte(proxyCfg.UserCAKey), 0o600); err != nil {
		t.Fatal(err)
	}
	m.mnt = filepath.Join(dir, "rec")
	os.MkdirAll(m.mnt, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", m.mnt).CombinedOutput(); err != nil {
		testenv.Need(t, "mount tmpfs: "+err.Error()+": "+string(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", m.mnt).Run() })
	m.recDir = filepath.Join(m.mnt, "recordings")
	m.metrics = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.listener = ln
	t.Cleanup(func() { ln.Close() })
	go greetAndHold(ln)

	rows := attackRows(m, dbPort)
	var users []*bstUser
	for i := range rows {
		r := &rows[i]
		r.src = fmt.Sprintf("127.0.0.%d", 100+i)
		u := r.user
		users = append(users, &u)
	}
	users = append(users, &bstUser{Name: "stranger-victim", Targets: []string{"db1"}}, &bstUser{Name: "starved", Targets: []string{"db1"}},
		&bstUser{Name: "paramiko", Targets: []string{"127.0.0.0/8:*"}})
	users = append(users, &bstUser{Name: "locked-user", Targets: []string{"db1"}}, &bstUser{Name: "reused-code", Targets: []string{"db1"}})
	m.w = bstNewWorld(t, bstSetup{
		Users:   users,
		Process: true,
		Targets: fmt.Sprintf("  - name: db1\n    addr: %s\n    user: %s\n    modes: [record]\n    host_ca: %q\n", m.db.Addr, testenv.SSHUser(t), strings.TrimSpace(proxyCfg.HostCA)),
		Extra: fmt.Sprintf("max_channels: 32\nmetrics_listen: %s\ntrusted_user_ca_keys: [%q]\nrecording: {dir: %s, user_ca_key: %s, cert_ttl: 2m}\n",
			m.metrics, strings.TrimSpace(string(caPub)), m.recDir, recCA),
		BruteForce: "brute_force: {source_threshold: 3, user_threshold: 3, lockout: 10m, backoff_base: 5ms, backoff_max: 10ms, report_threshold: -1}",
	})
	testenv.WaitTCP(t, "bastion metrics", m.metrics, 10*time.Second)

	for i := range rows {
		r := &rows[i]
		t.Run(r.name, func(t *testing.T) {
			out, err := r.attack(t, m, r)
			switch {
			case r.reached && (err != nil || !strings.Contains(out, attackMarker)):
				t.Fatalf("the allowed twin did not work: %v\n%s", err, recTail(out, 2000))
			case !r.reached && (err == nil || strings.Contains(out, attackMarker)):
				t.Fatalf("not refused: %v\n%s", err, recTail(out, 2000))
			}
			if r.refused != "" && !strings.Contains(out, r.refused) {
				t.Errorf("the client was not told %q:\n%s", r.refused, recTail(out, 2000))
			}
			want := map[string]any{"user": r.user.Name}
			for k, v := range r.audit {
				want[k] = v
			}
			m.waitAudit(t, want)
		})
	}

	// The items of issue 13 another change delivered, kept here as rows
	// of the same suite (their own tests go further).
	t.Run("lockout: wrong keys from 5 addresses do not lock the user out", func(t *testing.T) {
		stranger := filepath.Join(dir, "id_stranger")
		bstKey(t, stranger)
		for i := range 5 {
			m.w.wrongKeyFrom(fmt.Sprintf("127.0.0.%d", 20+i), "stranger-victim", stranger)
		}
		r := m.w.ssh(m.w.totp("stranger-victim"), "-b", "127.0.0.30", "-T", "stranger-victim@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "1) db1") {
			t.Fatalf("strangers' keys locked the user out: %v\n%s", r.Err, r.Out)
		}
		m.w.waitRecord(map[string]any{"type": "auth", "user": "stranger-victim", "method": "totp", "result": "success"})
	})
	t.Run("max_startups per source: 100 half-open connections from one address starve no one", func(t *testing.T) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 60)}, Timeout: 10 * time.Second}
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range 100 {
			c, err := d.Dial("tcp", m.w.Addr)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		r := m.w.ssh(m.w.totp("starved"), "-b", "127.0.0.61", "-T", "starved@bastion")
		if r.Err != nil || !strings.Contains(r.Out, "1) db1") {
			t.Fatalf("one address's connections starved another's login: %v\n%s", r.Err, r.Out)
		}
		m.w.waitRecord(map[string]any{"type": "refusal", "method": "max_startups_per_source", "source": "127.0.0.60"})
	})
	t.Run("paramiko logs in with key and TOTP", func(t *testing.T) {
		out, err := m.w.paramiko("paramiko", m.w.totp("paramiko"))
		if err != nil || !strings.Contains(out, "authenticated: True") {
			t.Fatalf("paramiko: %v\n%s", err, out)
		}
		m.w.waitRecord(map[string]any{"type": "auth", "user": "paramiko", "method": "totp", "result": "success"})
	})
	t.Run("lockout: a user locked by wrong codes after their own key is told so, not which factor", func(t *testing.T) {
		for i := range 3 {
			bad := fmt.Sprintf("%06d", (mustAtoi(t, m.w.totp("locked-user"))+500000)%1000000)
			if r := m.w.ssh(bad, "-b", fmt.Sprintf("127.0.0.%d", 40+i), "-T", "locked-user@bastion"); r.Err == nil {
				t.Fatalf("a wrong code logged in:\n%s", r.Out)
			}
		}
		m.w.waitRecord(map[string]any{"type": "auth", "method": "lock", "user": "locked-user"})
		r := m.w.ssh(m.w.totp("locked-user"), "-b", "127.0.0.43", "-T", "locked-user@bastion")
		if r.Err == nil || strings.Contains(r.Out, "1) db1") || !strings.Contains(r.Out, "This account is locked") || strings.Contains(r.Out, "code") {
			t.Fatalf("locked user: %v\n%s", r.Err, r.Out)
		}
	})
	t.Run("a replayed code is said to be used: wait for the next code", func(t *testing.T) {
		code := m.w.totp("reused-code")
		if r := m.w.ssh(code, "-b", "127.0.0.44", "-T", "reused-code@bastion"); r.Err != nil {
			t.Fatalf("first login: %v\n%s", r.Err, r.Out)
		}
		r := m.w.ssh(code, "-b", "127.0.0.44", "-T", "reused-code@bastion")
		if r.Err == nil || strings.Contains(r.Out, "1) db1") || !strings.Contains(r.Out, "wait for the next code") {
			t.Fatalf("replayed code: %v\n%s", r.Err, r.Out)
		}
		m.w.waitRecord(map[string]any{"type": "auth", "user": "reused-code", "method": "totp", "reason": "mfa: code already used"})
	})
	t.Run("user disable: a disabled user is refused without a restart", func(t *testing.T) {
		bin := testenv.BuildCommand(t, "bastion")
		m.w.enrolled("disabled-user", m.w.bastionCLI(bin, "user", "add", "disabled-user", "--key", m.w.KeyPath+".pub", "--totp", "--target", "db1", "--no-qr"))
		m.w.bastionCLI(bin, "user", "disable", "disabled-user")
		// Until the server has reloaded, every try is a failure of its
		// source (threshold 3 here): each try comes from a fresh address.
		for i := 0; ; i++ {
			r := m.w.ssh("nonsense", "-b", fmt.Sprintf("127.0.0.%d", 150+i), "-T", "disabled-user@bastion")
			if r.Err != nil && len(m.w.find(map[string]any{"user": "disabled-user", "method": "publickey", "reason": "user disabled"})) > 0 {
				break
			}
			if i == 60 {
				t.Fatalf("a disabled user is not refused as such after %d tries: %v\n%s", i, r.Err, r.Out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	// More rows for later items go above this line, as t.Run blocks or
	// attackRows entries.

	m.w.verifyAudit()
	data, _ := os.ReadFile(m.w.AuditPath)
	for i, line := range strings.Split(string(data), "\n") {
		if len(line) > audit.MaxLine {
			t.Errorf("audit line %d is %d bytes (MaxLine %d)", i+1, len(line), audit.MaxLine)
		}
	}
}

func attackRows(m *attackWorld, dbPort string) []attackRow {
	var rows []attackRow
	// 1. Recording bypass: every spelling of db1's address is db1.
	for i, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:FFFF:7F00:0001", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "127.0.0.1."} {
		rows = append(rows, attackRow{
			name:    "record-only db1 by jump to " + s,
			user:    bstUser{Name: fmt.Sprintf("mapped%d", i), Targets: []string{"127.0.0.0/8:*"}},
			attack:  jumpTo(s, dbPort),
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump", "target": "db1"},
		})
	}
	rows = append(rows,
		attackRow{
			name: "control: an allowed host by its mapped spelling is dialled at its canonical address",
			user: bstUser{Name: "mappedok", Targets: []string{"127.0.0.0/8:*"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				r.audit["target"] = "127.0.0.1:" + portOf(m.w.Target.Addr)
				r.audit["fields"] = "map[dest:" + r.audit["target"].(string) + "]"
				return jumpTo("::ffff:127.0.0.1", portOf(m.w.Target.Addr))(t, m, r)
			},
			reached: true,
			audit:   map[string]any{"type": "jump", "result": "success"},
		},
		attackRow{
			name:    "zoned address",
			user:    bstUser{Name: "zone", Targets: []string{"[::/0]:*", "0.0.0.0/0:*"}},
			attack:  stdioForward("[fe80::1%lo]:22"),
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump", "target": `invalid "fe80::1%lo":22`},
		},

		// 2. Certificates.
		certRow("certificate without principals", "certnone", "", "", "-V", "-5m:+1h", "certificate: no principals (it must name the user)"),
		certRow("certificate for another principal", "certwrong", "", "someone-else", "-V", "-5m:+1h", `principal "certwrong" not in the set of valid principals`),
		certRow("expired certificate", "certexpired", "", "certexpired", "-V", "20200101:20200102", "certificate: ssh: cert has expired"),
		certRow("certificate from another CA", "certca", "rogue", "certca", "-V", "-5m:+1h", "certificate: signed by an untrusted CA"),
		certRow("certificate source-address violated", "certsrc", "", "certsrc", "-O", "source-address=192.0.2.0/24", "not in source-address"),
		attackRow{
			name: "control: a certificate naming the user logs in",
			user: bstUser{Name: "certok", NoKey: true, Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				m.sign(t, "", r.user.Name, "-V", "-5m:+1h")
				res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, "-i", m.certKey, "-o", "CertificateFile="+m.certKey+"-cert.pub", "-T", r.user.Name+"@bastion")
				if res.Err == nil && strings.Contains(res.Out, "1) db1") {
					res.Out += attackMarker
				}
				return res.Out, res.Err
			},
			reached: true,
			audit:   map[string]any{"type": "auth", "method": "certificate", "result": "success"},
		},

		// 3. The bastion never jumps to itself.
		attackRow{
			name: "self-jump to the bastion's SSH listener",
			user: bstUser{Name: "self-ssh", Targets: []string{"127.0.0.0/8:*"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				r.audit["target"] = m.w.Addr
				return stdioForward(m.w.Addr)(t, m, r)
			},
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump"},
		},
		attackRow{
			name:    "self-jump to the metrics listener",
			user:    bstUser{Name: "self-metrics", Targets: []string{"127.0.0.0/8:*"}},
			attack:  stdioForward(m.metrics),
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump", "target": m.metrics},
		},
		attackRow{
			name: "self-jump through a mapped spelling of another loopback address",
			user: bstUser{Name: "self-mapped", Targets: []string{"127.0.0.0/8:*"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				r.audit["target"] = "127.0.0.2:" + portOf(m.w.Addr)
				return stdioForward("[::ffff:127.0.0.2]:"+portOf(m.w.Addr))(t, m, r)
			},
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump", "reason": containsMatcher("is an address of this bastion's host on a port it listens on")},
		},
		attackRow{
			name: "self-jump to the host's own non-loopback address",
			user: bstUser{Name: "self-host", Targets: []string{"0.0.0.0/0:*", "[::/0]:*"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				a := hostAddress(t)
				r.audit["target"] = netip.AddrPortFrom(a, uint16(mustAtoi(t, portOf(m.w.Addr)))).String()
				return stdioForward(r.audit["target"].(string))(t, m, r)
			},
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump"},
		},
		attackRow{
			name: "a name no rule names (localhost) is refused without DNS",
			user: bstUser{Name: "noname", Targets: []string{"127.0.0.0/8:*"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				r.audit["reason"] = "destination not allowed: localhost:" + portOf(m.metrics) + " is not in noname's targets"
				return stdioForward("localhost:"+portOf(m.metrics))(t, m, r)
			},
			refused: "administratively prohibited",
			audit:   map[string]any{"type": "refusal", "method": "jump", "target": containsMatcher("localhost:")},
		},

		// 6. Bounded input.
		attackRow{
			name:   "200,000-byte user name",
			user:   bstUser{Name: "long", Targets: []string{"db1"}},
			attack: longUserName,
			audit: map[string]any{"type": "auth", "result": "failure", "reason": "user name of 200000 bytes (at most 256)",
				"user": audit.Truncate(strings.Repeat("a", 200000), 64)},
		},
		attackRow{
			name:   "1,000 session channels on one connection",
			user:   bstUser{Name: "flood", Targets: []string{"db1"}},
			attack: sessionFlood,
			audit:  map[string]any{"type": "refusal", "method": "channel-limit"},
		},
		attackRow{
			name:   "40 forwarded connections (ssh -L) on one connection",
			user:   bstUser{Name: "floodl", Targets: []string{"127.0.0.0/8:*"}},
			attack: forwardFlood,
			audit:  map[string]any{"type": "refusal", "method": "channel-limit"},
		},
		attackRow{
			name:   "200 refused X11 channels and tcpip-forward requests on one connection",
			user:   bstUser{Name: "reqflood", Targets: []string{"db1"}},
			attack: requestFlood,
			audit:  map[string]any{"type": "refusal", "reason": containsMatcher("refusal 64 on this connection")},
		},

		// Cases that held before this suite; kept as regressions.
		attackRow{
			name: "key only, without the second factor",
			user: bstUser{Name: "keyonly", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				res := m.w.ssh("", "-b", r.src, "-o", "PreferredAuthentications=publickey", "-T", "keyonly@bastion")
				return res.Out, res.Err
			},
			refused: "Permission denied (keyboard-interactive)",
			audit:   map[string]any{"type": "auth", "result": "success", "reason": "key verified; second factor required"},
		},
		attackRow{
			name:   "replayed TOTP code",
			user:   bstUser{Name: "replay", Targets: []string{"db1"}},
			attack: replayedCode,
			audit:  map[string]any{"type": "auth", "method": "totp", "result": "failure", "reason": "mfa: code already used"},
		},
		attackRow{
			name:   "racing logins with one TOTP code",
			user:   bstUser{Name: "race", Targets: []string{"db1"}},
			attack: racingCode,
			audit:  map[string]any{"type": "auth", "method": "totp", "result": "failure", "reason": "mfa: code already used"},
		},
		attackRow{
			name:   "local port forwarding (ssh -L) outside the list",
			user:   bstUser{Name: "fwd-local", Targets: []string{"db1"}},
			attack: localForward,
			audit:  map[string]any{"type": "refusal", "method": "jump", "target": "192.0.2.1:22"},
		},
		attackRow{
			name: "remote port forwarding (ssh -R)",
			user: bstUser{Name: "fwd-remote", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "-N", r.user.Name+"@bastion")
				return res.Out, res.Err
			},
			refused: "remote port forwarding failed",
			audit:   map[string]any{"type": "refusal", "method": "remote-forwarding"},
		},
		attackRow{
			name: "X11 forwarding",
			user: bstUser{Name: "x11", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				out, err := m.run(t, r, nil, "ssh", "-b", r.src, "-o", "ForwardX11=yes", "-T", r.user.Name+"@bastion")
				if strings.Contains(out, "X11 forwarding request failed") {
					err = errors.New("X11 refused")
				}
				return out, err
			},
			refused: "X11 forwarding request failed",
			audit:   map[string]any{"type": "refusal", "method": "x11"},
		},
		attackRow{
			name:   "agent forwarding",
			user:   bstUser{Name: "agent", Targets: []string{"db1"}},
			attack: agentForward,
			audit:  map[string]any{"type": "refusal", "method": "agent-forwarding"},
		},
		attackRow{
			name: "exec on the bastion",
			user: bstUser{Name: "exec", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, r.user.Name+"@bastion", "id", ";", "echo", attackMarker)
				return res.Out, res.Err
			},
			refused: `"id" is not one of your targets`,
			audit:   map[string]any{"type": "refusal", "method": "target", "target": "id"},
		},
		attackRow{
			name: "subsystem other than sftp",
			user: bstUser{Name: "subsys", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, "-s", r.user.Name+"@bastion", "netconf")
				return res.Out, res.Err
			},
			refused: "subsystem request failed",
			audit:   map[string]any{"type": "refusal", "method": "subsystem", "reason": `subsystem "netconf" is not served`},
		},
		attackRow{
			name: "sftp on the bastion itself",
			user: bstUser{Name: "sftp", Targets: []string{"db1"}},
			attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
				return m.runStdin(t, r, "ls /\n", nil, "sftp", "-o", "BindAddress="+r.src, r.user.Name+"@bastion")
			},
			refused: "sftp needs a target",
			audit:   map[string]any{"type": "refusal", "method": "sftp"},
		},
		// Last: it fills the recording disk.
		attackRow{
			name:    "recorded session with the recording disk full",
			user:    bstUser{Name: "disk", Targets: []string{"db1"}},
			attack:  fullDisk,
			refused: "recording is unavailable",
			audit:   map[string]any{"type": "session", "method": "recorded.refused"},
		},
	)
	return rows
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// waitAudit waits for a record with every key=value of want (a
// containsMatcher value matches as a substring).
func (m *attackWorld) waitAudit(t *testing.T, want map[string]any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, rec := range m.w.records() {
			ok := true
			for k, v := range want {
				got := fmt.Sprint(rec[k])
				if c, isC := v.(containsMatcher); isC && !strings.Contains(got, string(c)) || !isC && got != fmt.Sprint(v) {
					ok = false
					break
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(m.w.AuditPath)
			t.Fatalf("no audit record matching %v in:\n%s", want, recTail(string(data), 6000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs an OpenSSH program (ssh, sftp) with the world's config, the
// row's TOTP code at every keyboard-interactive prompt and env added.
func (m *attackWorld) run(t *testing.T, r *attackRow, env []string, prog string, args ...string) (string, error) {
	return m.runStdin(t, r, "", env, prog, args...)
}

func (m *attackWorld) runStdin(t *testing.T, r *attackRow, stdin string, env []string, prog string, args ...string) (string, error) {
	t.Helper()
	d, err := os.MkdirTemp(m.w.Dir, "run")
	if err != nil {
		t.Fatal(err)
	}
	ans := filepath.Join(d, "answer")
	os.WriteFile(ans, []byte(m.w.totp(r.user.Name)+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t, prog), append([]string{"-F", m.w.SSHConfig}, args...)...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(m.w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
		"BST_ANSWER="+ans, "BST_ASKPASS_LOG="+filepath.Join(d, "prompts"), "SSH_AUTH_SOCK=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// jumpTo is "ssh -J row@bastion -p port host": the -J hop binds to the
// row's source address, so it is written as the ProxyCommand -J stands for.
func jumpTo(host, port string) func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	return func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
		proxy := fmt.Sprintf("%s -F %s -b %s -W [%%h]:%%p %s@bastion", testenv.Binary(t, "ssh"), m.w.SSHConfig, r.src, r.user.Name)
		res := m.w.ssh(m.w.totp(r.user.Name), "-o", "ProxyCommand="+proxy, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-p", port, "-l", m.w.TargetUser, host, "echo", attackMarker)
		return res.Out, res.Err
	}
}

// stdioForward is "ssh -W hostport row@bastion".
func stdioForward(hostport string) func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	return func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
		res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, "-W", hostport, r.user.Name+"@bastion")
		return res.Out, res.Err
	}
}

// sign certifies m.certKey with the trusted CA (or the rogue one) for
// principal ("" = no -n at all: no principals).
func (m *attackWorld) sign(t *testing.T, ca, principal string, extra ...string) {
	t.Helper()
	key := m.caPath
	if ca == "rogue" {
		key = m.rogueCA
	}
	args := []string{"-q", "-s", key, "-I", "attack-" + principal}
	if principal != "" {
		args = append(args, "-n", principal)
	}
	args = append(args, extra...)
	if out, err := exec.Command(m.keygen, append(args, m.certKey+".pub")...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
}

func certRow(name, user, ca, principal, opt, val, reason string) attackRow {
	return attackRow{
		name: name,
		user: bstUser{Name: user, NoKey: true, Targets: []string{"db1"}},
		attack: func(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
			m.sign(t, ca, principal, opt, val)
			res := m.w.ssh(m.w.totp(user), "-b", r.src, "-i", m.certKey, "-o", "CertificateFile="+m.certKey+"-cert.pub", "-T", user+"@bastion")
			return res.Out, res.Err
		},
		refused: "Permission denied",
		audit:   map[string]any{"type": "auth", "method": "certificate", "result": "failure", "reason": auditReason(reason)},
	}
}

// auditReason: the expected reason of certificate rows is matched whole
// when it starts with "certificate:", else as the tail of x/crypto's text.
func auditReason(s string) any {
	if strings.HasPrefix(s, "certificate:") {
		return s
	}
	return containsMatcher(s)
}

// containsMatcher is an expected audit value matched as a substring.
type containsMatcher string

func (c containsMatcher) String() string { return string(c) }

// longUserName logs in with a 200,000-byte user name, set in an ssh
// config file (a command-line argument that long exceeds the kernel's
// limit for one argument).
func longUserName(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	host, port, _ := net.SplitHostPort(m.w.Addr)
	cfg := filepath.Join(m.w.Dir, "long_ssh_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host long\n  HostName %s\n  Port %s\n  User %s\n  BindAddress %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n",
		host, port, strings.Repeat("a", 200000), r.src, m.w.KeyPath)), 0o600)
	before, _ := os.Stat(m.w.AuditPath)
	out, err := exec.Command(testenv.Binary(t, "ssh"), "-F", cfg, "long", "true").CombinedOutput()
	after, _ := os.Stat(m.w.AuditPath)
	if grew := after.Size() - before.Size(); grew > 4*audit.MaxLine {
		t.Errorf("one attempt wrote %d bytes to the audit log", grew)
	}
	return string(out), err
}

// dialGo logs in with the x/crypto client from the row's source.
func (m *attackWorld) dialGo(t *testing.T, r *attackRow) *gossh.Client {
	t.Helper()
	code := m.w.totp(r.user.Name)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.src)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", m.w.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ki := gossh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
		a := make([]string, len(qs))
		for i := range a {
			a[i] = code
		}
		return a, nil
	})
	cc, chans, reqs, err := gossh.NewClientConn(nc, m.w.Addr, &gossh.ClientConfig{User: r.user.Name,
		Auth: []gossh.AuthMethod{gossh.PublicKeys(m.w.Key), ki}, HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return gossh.NewClient(cc, chans, reqs)
}

// sessionFlood opens 1,000 session channels on one connection (an
// attacker's client; OpenSSH would not): max_sessions are served, the
// rest refused, and the audit says so once.
func sessionFlood(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	c := m.dialGo(t, r)
	defer c.Close()
	opened, refused := 0, 0
	for range 1000 {
		ch, reqs, err := c.OpenChannel("session", nil)
		var oce *gossh.OpenChannelError
		switch {
		case err == nil:
			go gossh.DiscardRequests(reqs)
			defer ch.Close()
			opened++
		case errors.As(err, &oce) && oce.Reason == gossh.ResourceShortage:
			refused++
		default:
			t.Fatalf("open: %v", err)
		}
	}
	if opened != 10 || refused != 990 {
		t.Errorf("%d opened, %d refused; want max_sessions 10 and 990", opened, refused)
	}
	if n := len(m.w.find(map[string]any{"user": r.user.Name, "method": "channel-limit"})); n > 1 {
		t.Errorf("%d audit records for one flood, want 1", n)
	}
	return fmt.Sprintf("%d opened, %d refused", opened, refused), errors.New("refused past max_sessions")
}

// requestFlood sends 200 x11 channel opens and 200 tcpip-forward
// requests on one connection: all refused, 64 audited.
func requestFlood(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	c := m.dialGo(t, r)
	defer c.Close()
	for range 200 {
		if _, _, err := c.OpenChannel("x11", nil); err == nil {
			t.Fatal("an x11 channel opened")
		}
		if ok, _, _ := c.SendRequest("tcpip-forward", true, gossh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0})); ok {
			t.Fatal("tcpip-forward accepted")
		}
	}
	if n := len(m.w.find(map[string]any{"type": "refusal", "user": r.user.Name})); n != 64 {
		t.Errorf("%d refusal records for 400 refusals, want 64", n)
	}
	return "400 requests refused", errors.New("refused")
}

// greetAndHold is a TCP service that says hello and keeps the connection
// open until the peer closes it.
func greetAndHold(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c.Write([]byte("hello\n"))
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}

// forwardFlood: OpenSSH's ssh -L, with 40 connections held open through
// it: each is a direct-tcpip channel; max_channels (32 in this world; 256
// by default) reach the service, 8 are refused.
func forwardFlood(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	lp := testenv.FreePort(t)
	ans := filepath.Join(t.TempDir(), "answer")
	os.WriteFile(ans, []byte(m.w.totp(r.user.Name)+"\n"), 0o600)
	cmd := exec.Command(testenv.Binary(t, "ssh"), "-F", m.w.SSHConfig, "-b", r.src, "-N",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", lp, m.listener.Addr()), r.user.Name+"@bastion")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(m.w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
		"BST_ANSWER="+ans, "BST_ASKPASS_LOG=/dev/null", "SSH_AUTH_SOCK=")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// The forward listens once the login is through.
	addr := fmt.Sprintf("127.0.0.1:%d", lp)
	testenv.WaitTCP(t, "ssh -L", addr, 30*time.Second)
	greeted := 0
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, _ := bufio.NewReader(c).ReadString('\n'); line == "hello\n" {
			greeted++
		}
	}
	if greeted != 32 {
		t.Errorf("%d of 40 forwarded connections reached the service, want max_channels 32", greeted)
	}
	return fmt.Sprintf("%d of 40 greeted\n%s", greeted, out.String()), errors.New("refused past max_channels")
}

func replayedCode(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	code := m.w.totp(r.user.Name)
	if res := m.w.ssh(code, "-b", r.src, "-T", r.user.Name+"@bastion"); res.Err != nil {
		t.Fatalf("first login: %v\n%s", res.Err, res.Out)
	}
	res := m.w.ssh(code, "-b", r.src, "-T", r.user.Name+"@bastion")
	if res.Err == nil {
		res.Out += attackMarker
	}
	return res.Out, res.Err
}

// racingCode starts two logins with the same code at once: exactly one
// gets in.
func racingCode(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	code := m.w.totp(r.user.Name)
	var wg sync.WaitGroup
	res := make([]sshResult, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = m.w.ssh(code, "-b", r.src, "-T", r.user.Name+"@bastion")
		}()
	}
	wg.Wait()
	ok := 0
	for _, x := range res {
		if x.Err == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d of 2 racing logins with one code got in, want 1:\n%s\n%s", ok, res[0].Out, res[1].Out)
	}
	return res[0].Out + res[1].Out, errors.New("the second login was refused")
}

// localForward: ssh -L to a host outside the list; the connection through
// it is closed at once.
func localForward(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	lp := testenv.FreePort(t)
	ans := filepath.Join(t.TempDir(), "answer")
	os.WriteFile(ans, []byte(m.w.totp(r.user.Name)+"\n"), 0o600)
	cmd := exec.Command(testenv.Binary(t, "ssh"), "-F", m.w.SSHConfig, "-b", r.src, "-N",
		"-L", fmt.Sprintf("127.0.0.1:%d:192.0.2.1:22", lp), r.user.Name+"@bastion")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+filepath.Join(m.w.Dir, "askpass"), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
		"BST_ANSWER="+ans, "BST_ASKPASS_LOG=/dev/null", "SSH_AUTH_SOCK=")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", lp)
	testenv.WaitTCP(t, "ssh -L", addr, 30*time.Second)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, rerr := c.Read(make([]byte, 64))
	var ne net.Error
	if n > 0 || rerr == nil || errors.As(rerr, &ne) && ne.Timeout() {
		t.Errorf("the forwarded connection was not closed: %d bytes, %v", n, rerr)
	}
	return out.String(), errors.New("forwarded connection closed")
}

func agentForward(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(testenv.Binary(t, "ssh-agent"), "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := m.run(t, r, []string{"SSH_AUTH_SOCK=" + sock}, "ssh", "-b", r.src, "-A", "-o", "LogLevel=DEBUG1", "-T", r.user.Name+"@bastion")
	// OpenSSH asks without wanting a reply: only the audit log can tell.
	if !strings.Contains(out, "Requesting authentication agent forwarding") {
		t.Fatalf("the client did not ask for agent forwarding: %v\n%s", err, recTail(out, 2000))
	}
	return out, errors.New("refused, see the audit log")
}

// fullDisk fills the recordings' tmpfs, then asks for a recorded
// session on db1.
func fullDisk(t *testing.T, m *attackWorld, r *attackRow) (string, error) {
	f, err := os.Create(filepath.Join(m.mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	res := m.w.ssh(m.w.totp(r.user.Name), "-b", r.src, "-T", r.user.Name+"@bastion", "db1", "echo", attackMarker)
	return res.Out, res.Err
}

// hostAddress is an address of one of this host's interfaces that is not
// loopback (the bastion listens on 127.0.0.1 only, so a jump there would
// fail anyway: the row checks it is refused as the bastion itself).
func hostAddress(t *testing.T) netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ia := range ifas {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok && !a.Unmap().IsLoopback() && !a.IsLinkLocalUnicast() {
				return a.Unmap()
			}
		}
	}
	// No such address here: add one for the test, on a dummy interface.
	name := "rampart" + strconv.Itoa(os.Getpid()%10000)
	for _, args := range [][]string{{"link", "add", name, "type", "dummy"}, {"addr", "add", "192.0.2.77/32", "dev", name}, {"link", "set", name, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			testenv.Need(t, "ip "+strings.Join(args, " ")+": "+string(out))
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return netip.MustParseAddr("192.0.2.77")
}
