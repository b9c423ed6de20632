package blocklist_test

// The fleet: blocklistd (bbolt, or two replicas on PostgreSQL) in host srv,
// blocklist-agent in hosts a and b enforcing with the real nftables
// backend in their own network namespaces, and host x, an attacker that
// can reach b. Every process is a real binary built from this checkout.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/server"
	"github.com/rampart-sec/rampart/firewall/nftables"
	"github.com/rampart-sec/rampart/test/testenv"
)

// fleetBinaries builds blocklistd and blocklist-agent from this checkout.
func fleetBinaries(t testing.TB) (blocklistd, agentBin string) {
	t.Helper()
	return testenv.BuildCommand(t, "blocklistd"), testenv.BuildCommand(t, "blocklist-agent")
}

// fleetLog collects a process's output for failure messages.
type fleetLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *fleetLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *fleetLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fleetProc is one daemon running inside a host.
type fleetProc struct {
	name string
	cmd  *exec.Cmd
	log  *fleetLog
	done chan struct{}
	err  error
}

func startProc(t testing.TB, h *testenv.Host, name string, bin string, args ...string) *fleetProc {
	t.Helper()
	p := &fleetProc{name: name, log: &fleetLog{}, done: make(chan struct{})}
	p.cmd = h.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.log)
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *fleetProc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.name, p.log)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.log)
	}
}

// fleet is the test network and its certificates.
type fleet struct {
	t               testing.TB
	blocklistd, bin string
	dir, pki        string
	srv, a, b, x    *testenv.Host
	linkA, linkB    *testenv.Link // srv–a, srv–b
	linkX           *testenv.Link // x–b
	servers         []*fleetProc
	serverCfgs      []string
	// listenTimeout bounds a blocklistd start (loading its store).
	listenTimeout time.Duration
}

// Ports of the blocklistd replicas inside host srv.
var fleetPorts = []int{8443, 8444}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Binary(t, "ping")
	f := &fleet{t: t, dir: t.TempDir(), listenTimeout: 20 * time.Second}
	f.blocklistd, f.bin = fleetBinaries(t)
	f.srv, f.a, f.b, f.x = testenv.NewHost(t), testenv.NewHost(t), testenv.NewHost(t), testenv.NewHost(t)
	f.linkA = testenv.Connect(t, f.srv, f.a)
	f.linkB = testenv.Connect(t, f.srv, f.b)
	f.linkX = testenv.Connect(t, f.x, f.b)
	f.pki = filepath.Join(f.dir, "pki")
	hosts := []string{"127.0.0.1", f.linkA.A4.String(), f.linkB.A4.String()}
	if err := server.WriteDevCerts(f.pki, hosts, time.Hour); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fleet) file(name string) string { return filepath.Join(f.pki, name) }

// startServers starts blocklistd: one on bbolt when dsn is "", else one
// replica per port on PostgreSQL.
func (f *fleet) startServers(dsn string, allow ...string) {
	f.t.Helper()
	n := 1
	store := fmt.Sprintf("{driver: bolt, path: %s}", filepath.Join(f.dir, "blocklistd.db"))
	if dsn != "" {
		n = 2
		store = fmt.Sprintf("{driver: postgres, dsn: '%s'}", dsn)
	}
	f.serverCfgs = nil
	for i := range n {
		cfg := filepath.Join(f.dir, fmt.Sprintf("blocklistd-%d.yaml", i))
		writeFleetFile(f.t, cfg, fmt.Sprintf(`listen: 0.0.0.0:%d
tls: {cert: %s, key: %s, client_ca: %s}
store: %s
policy: {threshold: 3, window: 10m, ban: 1h}
reporters: {rate: 100000, burst: 100000}
sync: {max_wait: 20s}
allow: [%s]
`, fleetPorts[i], f.file("blocklistd.pem"), f.file("blocklistd-key.pem"), f.file("ca.pem"), store, strings.Join(allow, ", ")))
		f.serverCfgs = append(f.serverCfgs, cfg)
	}
	f.restartServers()
}

func (f *fleet) restartServers() {
	f.t.Helper()
	f.servers = nil
	for i, cfg := range f.serverCfgs {
		p := startProc(f.t, f.srv, fmt.Sprintf("blocklistd-%d", i), f.blocklistd, "serve", "--config", cfg)
		f.servers = append(f.servers, p)
		f.waitListen(fleetPorts[i], p)
	}
}

func (f *fleet) stopServers() {
	f.t.Helper()
	for _, p := range f.servers {
		p.stop(f.t)
	}
}

func (f *fleet) waitListen(port int, p *fleetProc) {
	f.t.Helper()
	deadline := time.Now().Add(f.listenTimeout)
	for {
		err := f.srv.Do(func() error {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
		select {
		case <-p.done:
			f.t.Fatalf("blocklistd exited: %v\n%s", p.err, p.log)
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("blocklistd does not listen on %d:\n%s", port, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverURL is how host h (a or b) reaches replica i.
func (f *fleet) serverURL(h *testenv.Host, i int) string {
	l := f.linkA
	if h == f.b {
		l = f.linkB
	}
	return fmt.Sprintf("https://%s:%d", l.A4, fleetPorts[i%len(f.servers)])
}

// fleetAgent is one blocklist-agent process and its files.
type fleetAgent struct {
	name, cfg, state, authLog string
	host                      *testenv.Host
	proc                      *fleetProc
}

type agentOpts struct {
	replica  int
	table    string
	certName string // dev certificate name (agent, reporter, ...)
	pki      string // certificate directory (default the fleet's)
	allow    []string
}

func (f *fleet) newAgent(h *testenv.Host, name string, o agentOpts) *fleetAgent {
	f.t.Helper()
	if o.table == "" {
		o.table = "rampart"
	}
	if o.certName == "" {
		o.certName = "agent"
	}
	if o.pki == "" {
		o.pki = f.pki
	}
	ag := &fleetAgent{name: name, host: h,
		cfg:     filepath.Join(f.dir, name+".yaml"),
		state:   filepath.Join(f.dir, name+"-state"),
		authLog: filepath.Join(f.dir, name+"-auth.log"),
	}
	writeFleetFile(f.t, ag.authLog, "")
	writeFleetFile(f.t, ag.cfg, fmt.Sprintf(`server:
  url: %s
  ca: %s
  cert: %s
  key: %s
  wait: 20s
  backoff_min: 100ms
  backoff_max: 500ms
firewall: {backend: nftables, table: %s, allow: [%s]}
state_dir: %s
log_level: debug
detectors:
  - {name: sshd, type: sshd, file: %s, threshold: 3, window: 10m, poll: 20ms}
`, f.serverURL(h, o.replica), filepath.Join(o.pki, "ca.pem"), filepath.Join(o.pki, o.certName+".pem"),
		filepath.Join(o.pki, o.certName+"-key.pem"), o.table, strings.Join(o.allow, ", "), ag.state, ag.authLog))
	return ag
}

func (f *fleet) start(ag *fleetAgent) {
	f.t.Helper()
	ag.proc = startProc(f.t, ag.host, ag.name, f.bin, "run", "--config", ag.cfg)
}

// agentStatus runs `blocklist-agent status --json --config cfg` as an
// operator would; an agent that never ran reads as the zero status, not
// running.
func agentStatus(t testing.TB, bin, cfg string) (agent.Status, bool) {
	t.Helper()
	out, err := exec.Command(bin, "status", "--json", "--config", cfg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "never ran") {
			return agent.Status{}, false
		}
		// Exit 3: not running, with the last status written.
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("blocklist-agent status: %v: %s", err, out)
		}
	}
	var st struct {
		Running bool `json:"running"`
		agent.Status
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("blocklist-agent status --json: %v\n%s", err, out)
	}
	return st.Status, st.Running
}

// waitAgentStatus polls agentStatus until cond holds; the failure names
// what was awaited and ends with more (the agent's output, say).
func waitAgentStatus(t testing.TB, bin, cfg, what string, cond func(agent.Status, bool) bool, more func() string) agent.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, running := agentStatus(t, bin, cfg)
		if cond(st, running) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached; status %+v running %v\n%s", what, st, running, more())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// status is agentStatus for ag.
func (f *fleet) status(ag *fleetAgent) (agent.Status, bool) {
	f.t.Helper()
	return agentStatus(f.t, f.bin, ag.cfg)
}

// waitStatus is waitAgentStatus for ag.
func (f *fleet) waitStatus(ag *fleetAgent, what string, cond func(agent.Status, bool) bool) agent.Status {
	f.t.Helper()
	return waitAgentStatus(f.t, f.bin, ag.cfg, ag.name+": "+what, cond, func() string { return "" })
}

// enforced reads what the kernel of h drops in table, through the library.
func enforced(t testing.TB, h *testenv.Host, table string) func(netip.Addr) bool {
	t.Helper()
	b, err := nftables.New(nftables.Options{NetNS: h.Path(), Table: table})
	if err != nil {
		t.Fatal(err)
	}
	set, err := b.Current(context.Background())
	if err != nil {
		// No table yet: nothing enforced.
		return func(netip.Addr) bool { return false }
	}
	return set.Contains
}

// waitEnforced polls until every host's firewall blocks addr (want true)
// or lets it through (want false).
func waitEnforced(t testing.TB, addr netip.Addr, want bool, hosts ...*testenv.Host) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hosts {
		for enforced(t, h, "rampart")(addr) != want {
			if time.Now().After(deadline) {
				t.Fatalf("host %s: %v blocked = %v after 30s, want %v", h.Name, addr, !want, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pings reports whether x reaches b across their link.
func (f *fleet) pings() bool {
	_, err := f.x.Run("ping", "-c", "1", "-W", "1", f.linkX.B4.String())
	return err == nil
}

// pingsWithin retries pings for a while: the first may race neighbour
// discovery on a loaded machine.
func (f *fleet) pingsWithin(d time.Duration) bool {
	for deadline := time.Now().Add(d); ; {
		if f.pings() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// nsClient is a blocklistd client whose connections start inside host h.
func (f *fleet) nsClient(h *testenv.Host, replica int, certName string) *client.Client {
	f.t.Helper()
	cert, err := tls.LoadX509KeyPair(f.file(certName+".pem"), f.file(certName+"-key.pem"))
	if err != nil {
		f.t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(f.file("ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := h.Do(func() error {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				conn = c
				return err
			})
			return conn, err
		},
	}
	f.t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(client.Config{URL: fmt.Sprintf("https://127.0.0.1:%d", fleetPorts[replica]), HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// failSSH appends n sshd failures from addr to ag's auth log.
func failSSH(t testing.TB, ag *fleetAgent, addr netip.Addr, n int) {
	t.Helper()
	fh, err := os.OpenFile(ag.authLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for i := range n {
		fmt.Fprintf(fh, "Nov 22 04:13:%02d %s sshd[4242]: Failed password for root from %s port %d ssh2\n", i%60, ag.name, addr, 40000+i)
	}
}

func writeFleetFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
