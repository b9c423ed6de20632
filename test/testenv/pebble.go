package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PebbleOptions configures [StartPebble]. The zero value is a Pebble that
// validates HTTP-01 on HTTPPort and TLS-ALPN-01 on TLSPort (free ports picked
// for the test when zero), resolving every name to 127.0.0.1 through its own
// pebble-challtestsrv.
type PebbleOptions struct {
	// HTTPPort and TLSPort are where Pebble connects to validate HTTP-01 and
	// TLS-ALPN-01: the ports the client's solvers listen on. 0 picks a free one.
	HTTPPort, TLSPort int
	// BlockedDomains are refused at new-order (Pebble's domainBlocklist).
	BlockedDomains []string
	// RequireEAB makes Pebble require External Account Binding; EABKeys maps
	// key ID to the base64url HMAC key.
	EABKeys map[string]string
	// Profiles overrides Pebble's certificate profiles (name to validity in
	// seconds). Nil gives "default" (90 days) and "shortlived" (6 days).
	Profiles map[string]int
	// Env is added to Pebble's environment (PEBBLE_VA_NOSLEEP=1 is always set).
	Env []string
}

// Pebble is a running Pebble ACME server with its pebble-challtestsrv.
type Pebble struct {
	DirectoryURL  string // https://127.0.0.1:PORT/dir
	ManagementURL string // https://127.0.0.1:PORT (roots/0, set-renewal-info/)
	ChallSrvURL   string // http://127.0.0.1:PORT (challtestsrv's management API)
	DNSAddr       string // 127.0.0.1:PORT, challtestsrv's DNS server (UDP and TCP)
	// HTTPReqEndpoint speaks lego's "httpreq" DNS provider API (POST
	// /present and /cleanup with {"fqdn","value"}) and turns it into
	// challtestsrv set-txt/clear-txt calls, so DNS-01 goes through lego's
	// provider registry unchanged.
	HTTPReqEndpoint string
	HTTPPort        int
	TLSPort         int
	CAPEM           []byte         // the root that signed Pebble's listener certificate
	CAPool          *x509.CertPool // CAPEM as a pool
	CAFile          string         // CAPEM on disk, for REQUESTS_CA_BUNDLE and config files
	Dir             string
	Client          *http.Client // trusts CAPool
}

// StartPebble starts pebble-challtestsrv and Pebble on free loopback ports,
// with a TLS certificate minted for the test, and stops both at cleanup.
// Pebble runs with PEBBLE_VA_NOSLEEP=1 and resolves names through the
// challtestsrv, whose default A answer is 127.0.0.1.
func StartPebble(t testing.TB, opts PebbleOptions) *Pebble {
	t.Helper()
	pebbleBin := Binary(t, "pebble")
	challBin := Binary(t, "pebble-challtestsrv")
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := mintPebbleTLS(t)
	p := &Pebble{Dir: dir, CAPEM: caPEM, CAPool: x509.NewCertPool(), CAFile: filepath.Join(dir, "ca.pem")}
	p.CAPool.AppendCertsFromPEM(caPEM)
	p.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CAPool}}}
	for name, data := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.HTTPPort, p.TLSPort = opts.HTTPPort, opts.TLSPort
	if p.HTTPPort == 0 {
		p.HTTPPort = FreePort(t)
	}
	if p.TLSPort == 0 {
		p.TLSPort = FreePort(t)
	}

	dnsPort := freeUDPAndTCPPort(t)
	challMgmt := FreePort(t)
	p.DNSAddr = "127.0.0.1:" + strconv.Itoa(dnsPort)
	p.ChallSrvURL = "http://127.0.0.1:" + strconv.Itoa(challMgmt)
	startProcess(t, dir, "challtestsrv", nil, challBin,
		"-management", "127.0.0.1:"+strconv.Itoa(challMgmt),
		"-dnsserver", p.DNSAddr,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitPebbleTCP(t, "127.0.0.1:"+strconv.Itoa(challMgmt))

	acmePort, mgmtPort := FreePort(t), FreePort(t)
	profiles := opts.Profiles
	if profiles == nil {
		profiles = map[string]int{"default": 7776000, "shortlived": 518400}
	}
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod int    `json:"validityPeriod"`
	}
	ps := map[string]profile{}
	for name, v := range profiles {
		ps[name] = profile{Description: name, ValidityPeriod: v}
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       p.HTTPPort,
		"tlsPort":                        p.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(opts.EABKeys) > 0,
		"externalAccountMACKeys":         opts.EABKeys,
		"domainBlocklist":                append([]string{"blocked-domain.example"}, opts.BlockedDomains...),
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       ps,
	}}
	cfgJSON, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, opts.Env...)
	startProcess(t, dir, "pebble", env, pebbleBin, "-config", cfgPath, "-dnsserver", p.DNSAddr, "-strict=false")
	p.DirectoryURL = "https://127.0.0.1:" + strconv.Itoa(acmePort) + "/dir"
	p.ManagementURL = "https://127.0.0.1:" + strconv.Itoa(mgmtPort)
	waitPebbleTCP(t, "127.0.0.1:"+strconv.Itoa(acmePort))
	waitPebbleTCP(t, "127.0.0.1:"+strconv.Itoa(mgmtPort))
	p.HTTPReqEndpoint = p.startHTTPReqBridge(t)
	return p
}

// Root returns the PEM of Pebble's issuing root (it changes at every start).
func (p *Pebble) Root(t testing.TB) []byte {
	t.Helper()
	resp, err := p.Client.Get(p.ManagementURL + "/roots/0")
	if err != nil {
		t.Fatalf("testenv: pebble roots: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: pebble roots: %s: %s", resp.Status, b)
	}
	return b
}

// SetRenewalInfo makes Pebble answer ARI requests for certPEM's leaf with
// the given window (Retry-After stays Pebble's 6 hours).
func (p *Pebble) SetRenewalInfo(t testing.TB, certPEM []byte, start, end time.Time) {
	t.Helper()
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()}})
	body, _ := json.Marshal(map[string]string{"Certificate": string(certPEM), "ARIResponse": string(ari)})
	resp, err := p.Client.Post(p.ManagementURL+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("testenv: pebble set-renewal-info: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("testenv: pebble set-renewal-info: %s: %s", resp.Status, b)
	}
}

// ChallSrv POSTs a JSON body to one of challtestsrv's management endpoints
// ("add-a", "set-default-ipv4", "set-txt", ...).
func (p *Pebble) ChallSrv(t testing.TB, endpoint string, body any) {
	t.Helper()
	if err := p.challSrv(context.Background(), endpoint, body); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

func (p *Pebble) challSrv(ctx context.Context, endpoint string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.ChallSrvURL+"/"+endpoint, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("challtestsrv %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("challtestsrv %s: %s: %s", endpoint, resp.Status, msg)
	}
	return nil
}

// startHTTPReqBridge serves lego's httpreq API and forwards to challtestsrv.
func (p *Pebble) startHTTPReqBridge(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	handle := func(endpoint string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var msg struct{ FQDN, Value string }
			if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.FQDN == "" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			body := map[string]string{"host": msg.FQDN}
			if endpoint == "set-txt" {
				body["value"] = msg.Value
			}
			if err := p.challSrv(r.Context(), endpoint, body); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
	}
	mux.HandleFunc("POST /present", handle("set-txt"))
	mux.HandleFunc("POST /cleanup", handle("clear-txt"))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// startProcess runs a peer in its own process group, logging to dir/NAME.log,
// and kills the group at cleanup.
func startProcess(t testing.TB, dir, name string, env []string, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, name+".log")); err == nil {
				t.Logf("testenv: %s log:\n%s", name, tail(b, 4000))
			}
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func waitPebbleTCP(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("testenv: nothing listens on %s after 20s", addr)
}

// freeUDPAndTCPPort finds a port free for both UDP and TCP, as a DNS server
// needs both.
func freeUDPAndTCPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("testenv: no port free for both UDP and TCP")
	return 0
}

// mintPebbleTLS makes a root and a leaf for 127.0.0.1 and localhost.
func mintPebbleTLS(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rampart test pebble listener root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
