package blocklist_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/store"
	"github.com/rampart-sec/rampart/blocklist/store/boltstore"
	"github.com/rampart-sec/rampart/test/testenv"
)

// The blocklistd binary refuses to ban what the README promises it never
// bans, refuses reasons with control characters, escapes such reasons
// already in the store when listing them, and logs and counts clients
// refused at the TLS handshake.
func TestRefusalsBinary(t *testing.T) {
	bin := buildBlocklistd(t)
	p := newServerPKI(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "blocklistd.db")
	// A reason an older version (or a direct store writer) let in.
	st, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), []store.Mutation{{Op: store.PutDecision, Decision: &store.Decision{
		Prefix: netip.MustParsePrefix("203.0.113.9/32"), Action: store.ActionBan, Source: "manual",
		Reason: "\x1b[2J\x1b[31mred\u202eeulav", Created: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "blocklistd.yaml")
	writeFleetFile(t, cfg, fmt.Sprintf(`listen: %s
metrics_listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: bolt, path: %s}
cli: {cert: %s, key: %s}
`, listen, metricsAddr, p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"), db,
		p.file("admin.pem"), p.file("admin-key.pem")))
	daemon, logs := startDaemon(t, bin, cfg, listen)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		return string(out), err
	}
	for _, target := range []string{"127.0.0.1", "127.0.0.0/16", "0.0.0.0", "224.0.0.251", "239.0.0.0/8", "255.255.255.255",
		"169.254.169.254", "::", "::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1"} {
		out, err := run("ban", target)
		if err == nil || !strings.Contains(out, "not bannable") {
			t.Errorf("ban %s: %v\n%s", target, err, out)
		}
	}
	if out, err := run("ban", "192.0.2.1", "--reason", "evil\x1b[2J"); err == nil || !strings.Contains(out, "control or format character") {
		t.Errorf("ban with an escape sequence in the reason: %v\n%s", err, out)
	}
	out, err := run("list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if strings.ContainsAny(out, "\x1b\u202e") || !strings.Contains(out, `"\x1b[2J\x1b[31mred\u202eeulav"`) {
		t.Fatalf("list does not escape the stored reason:\n%q", out)
	}

	// TLS: no certificate, and one from another CA.
	url := "https://" + listen
	rogue := newServerPKI(t)
	for _, tc := range []struct {
		name string
		get  func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	}{
		{"no certificate", func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }},
		{"another CA", func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := rogue.clientTLS(t, "agent").Certificates[0]
			return &c, nil
		}},
	} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool(t), GetClientCertificate: tc.get}}}
		if resp, err := hc.Get(url + "/v1/sync"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s: accepted", tc.name)
		}
	}
	waitLog(t, logs, `msg="blocklistd: TLS handshake refused" remote=127.0.0.1:`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, metricsAddr)
		if strings.Contains(m, `rampart_blocklistd_tls_handshake_failures_total{reason="no_certificate"} 1`) &&
			strings.Contains(m, `rampart_blocklistd_tls_handshake_failures_total{reason="unknown_ca"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshake refusals not counted:\n%s", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopDaemon(t, daemon)
}
