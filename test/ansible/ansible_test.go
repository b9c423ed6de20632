// Package ansible_test rolls the fleet of examples/ansible out with
// Debian's ansible-core onto network-namespace hosts, each running its own
// OpenSSH sshd, reached only through a running `bastion serve` (ProxyJump,
// the TOTP answered once through SSH_ASKPASS and oathtool, shared by
// ControlMaster), and checks the result end to end.
package ansible_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/test/testenv"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "unitctl" {
		os.Exit(unitctl(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fleet is the rig: the controller's namespace (admin), which reaches only
// the bastion, and the LAN behind the bastion.
type fleet struct {
	t       *testing.T
	dir     string // the copy of examples/ansible the playbooks run in
	admin   *testenv.Host
	hosts   map[string]*fleetHost
	key     string // the controller's private key file
	pubKey  string
	unitctl string
	bins    string
	door    string // the bastion's address as the controller sees it
	askLog  string // one line per TOTP prompt answered
	secret  string // the TOTP secret, once enrolled
}

type fleetHost struct {
	name string
	ns   *testenv.Host
	lan  string // address on the LAN
	root string // rampart_root: this host's own file tree
	sshd *testenv.SSHD
}

const lanPrefix = "10.77.0."

func TestAnsibleFleet(t *testing.T) {
	testenv.RequireRoot(t)
	for _, b := range []string{"ansible-playbook", "ssh", "sshd", "oathtool", "nft", "ip", "systemd-analyze"} {
		testenv.Binary(t, b)
	}
	f := newFleet(t, "bastion", "ca", "web1", "web2", "web3")
	inv := map[string][]string{"rampart_web": {"web1", "web2"}}

	// 1. The door, reached directly on the bastion machine's own sshd.
	f.writeInventory(inv, nil)
	out := f.ansible("bastion.yml")
	f.wantRecap(out, map[string]bool{"bastion": true})

	// 2. The shared connection: key + TOTP, once.
	f.openMaster()

	// 3. Everything else, through the door.
	start := time.Now()
	out = f.ansible("site.yml")
	f.wantRecap(out, nil)
	t.Logf("first site.yml run: %s", time.Since(start).Round(time.Second))

	// A second run changes nothing anywhere.
	start = time.Now()
	out = f.ansible("site.yml")
	f.wantNoChange(out, "ca", "bastion", "web1", "web2")
	t.Logf("second site.yml run (changed=0): %s", time.Since(start).Round(time.Second))

	f.checkUnits("ca", "bastion", "web1", "web2")
	f.checkCerts("ca", "bastion", "web1", "web2")
	f.checkBan("203.0.113.0/24", "ca", "bastion", "web1", "web2")
	f.checkDoor(map[string]bool{"web1": true, "web2": true, "web3": false})

	// Add web3 (one inventory line), retire web2: one run.
	inv["rampart_web"] = []string{"web1", "web3"}
	f.writeInventory(inv, []string{"web2"})
	// Check mode first: it must get through a host that has nothing yet,
	// and leave it so. The door must know web3 for that, which only a
	// real run of bastion.yml does (check mode changes nothing).
	out = f.ansible("bastion.yml")
	f.wantRecap(out, map[string]bool{"bastion": true})
	out = f.ansible("site.yml", "--check", "--limit", "web3,ca")
	f.wantRecap(out, map[string]bool{"web3": true, "ca": true})
	if _, err := os.Stat(filepath.Join(f.hosts["web3"].root, "etc/rampart/tls/host/cert.pem")); err == nil {
		t.Errorf("site.yml --check bootstrapped web3")
	}
	out = f.ansible("site.yml")
	f.wantRecap(out, nil)
	f.checkCerts("web3")
	f.checkBan("203.0.113.0/24", "web3")
	f.checkDoor(map[string]bool{"web1": true, "web2": false, "web3": true})
	f.checkRevoked("web2")

	if n := f.prompts(); n != 1 {
		t.Errorf("the TOTP was asked %d times over every run, want once (ControlMaster shares one login)", n)
	}
	f.checkAudit()
}

func newFleet(t *testing.T, names ...string) *fleet {
	work := t.TempDir()
	// Service accounts (rampart-pki, ...) must reach their files under it.
	for d := work; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	f := &fleet{t: t, dir: filepath.Join(work, "ansible"), hosts: map[string]*fleetHost{},
		askLog: filepath.Join(work, "askpass.log")}
	if out, err := exec.Command("cp", "-r", filepath.Join(testenv.ModuleRoot(), "examples", "ansible"), f.dir).CombinedOutput(); err != nil {
		t.Fatalf("copy examples/ansible: %v: %s", err, out)
	}
	f.buildBinaries(filepath.Join(work, "bin"))

	// The test binary is unitctl under that name.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f.unitctl = filepath.Join(work, "unitctl")
	if err := os.Symlink(self, f.unitctl); err != nil {
		t.Fatal(err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKey(priv, "ansible controller")
	f.key = filepath.Join(work, "id_ed25519")
	os.WriteFile(f.key, pem.EncodeToMemory(block), 0o600)
	signer, _ := gossh.NewSignerFromKey(priv)
	f.pubKey = strings.TrimSpace(string(gossh.MarshalAuthorizedKey(signer.PublicKey())))

	f.admin = testenv.NewHost(t)
	for i, name := range names {
		h := &fleetHost{name: name, ns: testenv.NewHost(t), lan: lanPrefix + strconv.Itoa(i+1),
			root: filepath.Join(work, "hosts", name)}
		os.MkdirAll(h.root, 0o755)
		f.hosts[name] = h
	}
	// The LAN: a bridge in the bastion's namespace, a veth to each host.
	// The bastion does not forward: the controller reaches the LAN only
	// through the door.
	b := f.hosts["bastion"]
	b.ns.MustRun("ip", "link", "add", "br0", "type", "bridge")
	b.ns.MustRun("ip", "addr", "add", b.lan+"/24", "dev", "br0")
	b.ns.MustRun("ip", "link", "set", "br0", "up")
	for i, name := range names[1:] {
		h := f.hosts[name]
		br, host := fmt.Sprintf("lan%d", i), "eth0"
		if out, err := exec.Command("ip", "link", "add", br, "netns", b.ns.Name, "type", "veth", "peer", "name", host, "netns", h.ns.Name).CombinedOutput(); err != nil {
			t.Fatalf("veth: %v: %s", err, out)
		}
		b.ns.MustRun("ip", "link", "set", br, "master", "br0")
		b.ns.MustRun("ip", "link", "set", br, "up")
		h.ns.MustRun("ip", "addr", "add", h.lan+"/24", "dev", host)
		h.ns.MustRun("ip", "link", "set", host, "up")
	}
	link := testenv.Connect(t, f.admin, b.ns)
	f.door = link.B4.String()

	authorized, _, _, _, _ := gossh.ParseAuthorizedKey([]byte(f.pubKey))
	for _, name := range names {
		h := f.hosts[name]
		h.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{Host: h.ns, AuthorizedKeys: []gossh.PublicKey{authorized}})
	}
	f.writeSSHConfig()
	// The operator knows the bastion machine's own host key before the
	// first run (ssh_config: StrictHostKeyChecking yes for it).
	known := f.door + " " + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(b.sshd.HostKey))) + "\n"
	if err := os.WriteFile(filepath.Join(f.dir, "known_hosts"), []byte(known), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fleet) buildBinaries(dir string) {
	f.bins = dir
	os.MkdirAll(dir, 0o755)
	for _, b := range []struct{ name, cmd, tag string }{
		{"pki", "pki", ""}, {"pki-host", "pki", "pkiclient"}, {"blocklistd", "blocklistd", ""},
		{"blocklist-agent", "blocklist-agent", ""}, {"bastion", "bastion", ""},
	} {
		var tags []string
		if b.tag != "" {
			tags = append(tags, b.tag)
		}
		src := testenv.BuildCommand(f.t, b.cmd, tags...)
		if err := os.Rename(src, filepath.Join(dir, b.name)); err != nil {
			f.t.Fatal(err)
		}
	}
}

// writeSSHConfig is examples/ansible/ssh_config with the rig's addresses
// and paths: every directive the operator gets is what the test runs.
func (f *fleet) writeSSHConfig() {
	b, err := os.ReadFile(filepath.Join(f.dir, "ssh_config"))
	if err != nil {
		f.t.Fatal(err)
	}
	s := string(b)
	for _, r := range []struct{ old, new string }{
		{"bastion.example.org", f.door},
		{"10.0.0.*", lanPrefix + "*"},
		{"~/.ssh/id_ed25519", f.key},
		{"~/.ssh/rampart-%C", filepath.Join(filepath.Dir(f.dir), "cm-%C")},
		{"UserKnownHostsFile known_hosts", "UserKnownHostsFile " + filepath.Join(f.dir, "known_hosts")},
	} {
		if !strings.Contains(s, r.old) {
			f.t.Fatalf("examples/ansible/ssh_config no longer contains %q: update the test's substitutions", r.old)
		}
		s = strings.ReplaceAll(s, r.old, r.new)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "ssh_config"), []byte(s), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// writeInventory writes inventory.yml: the example's shape, this rig's
// addresses, and per host its own file tree and the external service
// manager (no systemd as PID 1 here).
func (f *fleet) writeInventory(groups map[string][]string, retired []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "all:\n  vars:\n    ansible_user: root\n    ansible_python_interpreter: /usr/bin/python3\n")
	fmt.Fprintf(&b, "    rampart_binaries_src: %s\n", f.bins)
	fmt.Fprintf(&b, "    rampart_service_manager: external\n")
	fmt.Fprintf(&b, "    rampart_retired_hosts: %s\n", yamlList(retired))
	fmt.Fprintf(&b, "    rampart_bastion_users:\n      ops:\n        keys: [%q]\n        groups: [fleet]\n", f.pubKey)
	host := func(name string) {
		h := f.hosts[name]
		addr := h.lan
		if name == "bastion" {
			addr = f.door
		}
		fmt.Fprintf(&b, "        %s:\n          ansible_host: %s\n          rampart_lan_address: %s\n", name, addr, h.lan)
		fmt.Fprintf(&b, "          rampart_root: %s\n", h.root)
		fmt.Fprintf(&b, "          rampart_service_command: %s --run-dir %s\n", f.unitctl, filepath.Join(h.root, "run"))
		// No journald here: the sshd detector tails sshd's own log.
		fmt.Fprintf(&b, "          rampart_agent_sshd_log: %s\n", h.sshd.LogPath)
	}
	fmt.Fprintf(&b, "  children:\n")
	for _, g := range []struct {
		name  string
		hosts []string
	}{{"rampart_bastion", []string{"bastion"}}, {"rampart_ca", []string{"ca"}}, {"rampart_blocklistd", []string{"ca"}}, {"rampart_web", groups["rampart_web"]}} {
		fmt.Fprintf(&b, "    %s:\n      hosts:\n", g.name)
		for _, n := range g.hosts {
			host(n)
		}
	}
	if err := os.WriteFile(filepath.Join(f.dir, "inventory.yml"), []byte(b.String()), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func yamlList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	return "[" + strings.Join(l, ", ") + "]"
}

// ansible runs ansible-playbook in the controller's namespace from the
// playbook directory, as an operator would, and returns its output.
func (f *fleet) ansible(playbook string, args ...string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", f.admin.Name, "ansible-playbook", playbook}, args...)...)
	cmd.Dir = f.dir
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "SSH_AUTH_SOCK=",
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(filepath.Dir(f.dir), "ansible-tmp"))
	// Also in a file, to follow a slow run: tail -f DIR/ansible.log.
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(f.dir), "ansible.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer logf.Close()
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, logf)
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	f.t.Logf("ansible-playbook %s %v: %s", playbook, args, time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		f.t.Fatalf("ansible-playbook %s: %v\n%s", playbook, err, tail(out.String(), 12000))
	}
	// no_log wherever a token or a TOTP secret passes.
	if m := secretRE.FindString(out.String()); m != "" {
		f.t.Errorf("ansible-playbook %s printed a secret: %q", playbook, m)
	}
	if f.secret != "" && strings.Contains(out.String(), f.secret) {
		f.t.Errorf("ansible-playbook %s printed the TOTP secret", playbook)
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

// secretRE matches an otpauth URI or a JWT (pki tokens are JWTs).
var secretRE = regexp.MustCompile(`otpauth://|eyJ[A-Za-z0-9_-]{10,}\.eyJ`)

var recapRE = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

type recap struct{ ok, changed, unreachable, failed int }

func parseRecap(out string) map[string]recap {
	m := map[string]recap{}
	for _, r := range recapRE.FindAllStringSubmatch(out, -1) {
		n := func(i int) int { v, _ := strconv.Atoi(r[i]); return v }
		m[r[1]] = recap{n(2), n(3), n(4), n(5)}
	}
	return m
}

// wantRecap checks no host failed or was unreachable, and, when want is
// given, that exactly those hosts were in the run.
func (f *fleet) wantRecap(out string, want map[string]bool) map[string]recap {
	f.t.Helper()
	m := parseRecap(out)
	if len(m) == 0 {
		f.t.Fatalf("no PLAY RECAP in the output:\n%s", tail(out, 4000))
	}
	for h, r := range m {
		if r.failed != 0 || r.unreachable != 0 {
			f.t.Errorf("%s: failed=%d unreachable=%d", h, r.failed, r.unreachable)
		}
		if want != nil && !want[h] {
			f.t.Errorf("host %s in the recap, want only %v", h, want)
		}
	}
	if f.t.Failed() {
		f.t.Fatalf("output:\n%s", tail(out, 12000))
	}
	return m
}

func (f *fleet) wantNoChange(out string, hosts ...string) {
	f.t.Helper()
	m := f.wantRecap(out, nil)
	for _, h := range hosts {
		r, ok := m[h]
		if !ok {
			f.t.Errorf("%s missing from the recap", h)
		} else if r.changed != 0 {
			f.t.Errorf("second run: %s changed=%d, want 0", h, r.changed)
		}
	}
	if f.t.Failed() {
		f.t.Fatalf("changed tasks:\n%s", changedTasks(out))
	}
}

// changedTasks lists the "changed:" lines with the task header before each.
func changedTasks(out string) string {
	var b strings.Builder
	task := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "TASK [") || strings.HasPrefix(l, "RUNNING HANDLER [") {
			task = l
		}
		if strings.HasPrefix(l, "changed:") {
			fmt.Fprintf(&b, "%s\n  %s\n", task, l)
		}
	}
	return b.String()
}

// openMaster is the operator's `ssh -F ssh_config -fN bastion`: key, then
// the TOTP code, which askpass computes with oathtool from the enrolment
// the bastion play fetched back.
func (f *fleet) openMaster() {
	f.t.Helper()
	enrol, err := os.ReadFile(filepath.Join(f.dir, "enrolment", "ops.txt"))
	if err != nil {
		f.t.Fatalf("the bastion play did not fetch the enrolment back: %v", err)
	}
	m := regexp.MustCompile(`otpauth://\S+`).Find(enrol)
	if m == nil {
		f.t.Fatalf("no otpauth URI in the enrolment file")
	}
	u, err := url.Parse(string(m))
	if err != nil {
		f.t.Fatal(err)
	}
	secret := u.Query().Get("secret")
	f.secret = secret
	askpass := filepath.Join(filepath.Dir(f.dir), "askpass")
	os.WriteFile(askpass, []byte(fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec oathtool --totp -b %s\n", f.askLog, secret)), 0o700)
	logf := filepath.Join(filepath.Dir(f.dir), "ssh-master.log")
	// -f: ssh backgrounds once logged in; its output goes to a file, not
	// a pipe this process would wait on.
	cmd := f.admin.Command("ssh", "-F", "ssh_config", "-E", logf, "-fN", "bastion")
	cmd.Dir = f.dir
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "SSH_AUTH_SOCK=")
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logf)
		f.t.Fatalf("ssh -fN bastion: %v\n%s", err, b)
	}
}

func (f *fleet) prompts() int {
	b, _ := os.ReadFile(f.askLog)
	return strings.Count(string(b), "\n")
}

func (f *fleet) cleanup() {
	// Ansible's and the operator's shared connections.
	socks, _ := filepath.Glob(filepath.Join(filepath.Dir(f.dir), "cm-*"))
	for _, s := range socks {
		f.admin.Command("ssh", "-o", "ControlPath="+s, "-O", "exit", "x").Run()
	}
	// Daemons the roles started through unitctl.
	for _, h := range f.hosts {
		pids, _ := filepath.Glob(filepath.Join(h.root, "run", "*.pid"))
		for _, p := range pids {
			stopUnit(p)
		}
		if f.t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(h.root, "run", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				f.t.Logf("%s %s:\n%s", h.name, filepath.Base(l), tail(string(b), 3000))
			}
		}
	}
}

// checkUnits: systemd itself accepts every service unit the roles
// installed (systemd-analyze verify: keys, commands that exist), since
// only their ExecStart= lines run here.
func (f *fleet) checkUnits(hosts ...string) {
	f.t.Helper()
	for _, name := range hosts {
		units, _ := filepath.Glob(filepath.Join(f.hosts[name].root, "etc/systemd/system/*.service"))
		var plain []string
		for _, u := range units {
			if !strings.Contains(filepath.Base(u), "@") {
				plain = append(plain, u)
			}
		}
		if len(plain) == 0 {
			f.t.Errorf("%s: no unit installed", name)
			continue
		}
		if out, err := exec.Command("systemd-analyze", append([]string{"verify"}, plain...)...).CombinedOutput(); err != nil {
			f.t.Errorf("%s: systemd-analyze verify %v: %v\n%s", name, plain, err, out)
		}
	}
}

// checkCerts: each host's certificate chains to the CA's root, and renews
// (pki renew --force, as the renewal unit would once due) to a new serial
// that chains too; the renewal unit itself runs and succeeds.
func (f *fleet) checkCerts(hosts ...string) {
	f.t.Helper()
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(filepath.Join(f.hosts["ca"].root, "etc/rampart/pki/root_ca.crt"))
	if err != nil {
		f.t.Fatal(err)
	}
	roots.AppendCertsFromPEM(rootPEM)
	for _, name := range hosts {
		h := f.hosts[name]
		dir := filepath.Join(h.root, "etc/rampart/tls/host")
		before := verifyChain(f.t, filepath.Join(dir, "cert.pem"), roots, name)
		if out, err := h.ns.Run(filepath.Join(h.root, "usr/local/bin/pki"), "renew", "--force", "--dir", dir); err != nil {
			f.t.Errorf("%s: pki renew --force: %v\n%s", name, err, out)
			continue
		}
		after := verifyChain(f.t, filepath.Join(dir, "cert.pem"), roots, name)
		if before.SerialNumber.Cmp(after.SerialNumber) == 0 {
			f.t.Errorf("%s: the renewed certificate has the old serial %s", name, before.SerialNumber)
		}
		// The unit the role installed, as the timer would start it.
		if out, err := h.ns.Run(f.unitctl, "--run-dir", filepath.Join(h.root, "run"), "run",
			filepath.Join(h.root, "etc/systemd/system/rampart-pki-renew@.service"), "host"); err != nil {
			f.t.Errorf("%s: rampart-pki-renew@host.service: %v\n%s", name, err, out)
		}
	}
}

func verifyChain(t *testing.T, path string, roots *x509.CertPool, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("%s: no certificate in %s", name, path)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		t.Errorf("%s: %s does not chain to the CA for %s: %v", name, path, name, err)
	}
	return certs[0]
}

// checkBan: `blocklistd ban` on the blocklistd host reaches every host's
// nftables set.
func (f *fleet) checkBan(prefix string, hosts ...string) {
	f.t.Helper()
	ca := f.hosts["ca"]
	if out, err := ca.ns.Run(filepath.Join(ca.root, "usr/local/bin/blocklistd"), "ban", prefix, "--reason", "ansible test",
		"--config", filepath.Join(ca.root, "etc/rampart/blocklistd.yaml")); err != nil {
		f.t.Fatalf("blocklistd ban: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range hosts {
		h := f.hosts[name]
		for {
			out, _ := h.ns.Run("nft", "list", "table", "inet", "rampart")
			if strings.Contains(out, prefix) {
				break
			}
			if time.Now().After(deadline) {
				f.t.Errorf("%s: %s not in nftables table inet rampart after 30s:\n%s", name, prefix, out)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// checkDoor: through the shared connection, the door lets the
// inventory's hosts be reached and refuses the others.
func (f *fleet) checkDoor(want map[string]bool) {
	f.t.Helper()
	for name, allowed := range want {
		// A connection of its own to the target (not Ansible's
		// ControlPersist one, which the door let in earlier and does not
		// cut): the jump is a new channel of the shared door connection.
		cmd := f.admin.Command("ssh", "-F", "ssh_config", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
			"-o", "ControlPath=none", f.hosts[name].lan, "true")
		cmd.Dir = f.dir
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
		out, err := cmd.CombinedOutput()
		if allowed && err != nil {
			f.t.Errorf("ssh through the door to %s: %v\n%s", name, err, out)
		}
		if !allowed && err == nil {
			f.t.Errorf("the door let the controller reach %s, which is not (or no longer) in the inventory", name)
		}
	}
}

// checkRevoked: a retired host's certificate no longer renews.
func (f *fleet) checkRevoked(name string) {
	f.t.Helper()
	h := f.hosts[name]
	out, err := h.ns.Run(filepath.Join(h.root, "usr/local/bin/pki"), "renew", "--force", "--dir", filepath.Join(h.root, "etc/rampart/tls/host"))
	if err == nil {
		f.t.Errorf("%s is retired, yet its certificate renewed:\n%s", name, out)
	}
}

// checkAudit: the door's audit chain is intact and shows ops logged in.
func (f *fleet) checkAudit() {
	f.t.Helper()
	b := f.hosts["bastion"]
	if out, err := b.ns.Run(filepath.Join(b.root, "usr/local/bin/bastion"), "audit", "verify", "--config", filepath.Join(b.root, "etc/rampart/bastion.yaml")); err != nil {
		f.t.Errorf("bastion audit verify: %v\n%s", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(b.root, "var/log/rampart/bastion/audit.jsonl"))
	if !bytes.Contains(log, []byte(`"ops"`)) {
		f.t.Errorf("the door's audit log does not mention ops:\n%s", tail(string(log), 2000))
	}
}
