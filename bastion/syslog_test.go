package bastion_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/audit"
)

// TestAuditSyslogFromConfig: audit.syslog in the config sends every
// record to a TLS collector as RFC 5424 with octet counting.
func TestAuditSyslogFromConfig(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	defer hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: hs.TLS.Certificates})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString(' ')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(l))
			msg := make([]byte, n)
			if _, err := io.ReadFull(r, msg); err != nil {
				return
			}
			got <- string(msg)
		}
	}()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644)
	p := filepath.Join(dir, "bastion.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("state_dir: state\naudit:\n  syslog: {addr: %q, ca_file: ca.pem, app_name: door}\n", ln.Addr().String())), 0o600)
	c, err := bastion.LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, closeAudit, err := bastion.Setup(ctx, c, bastion.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAudit()
	srv.AuditEvent("recorded.start", map[string]any{"user": "alice", "target": "db1"})
	select {
	case m := <-got:
		if !strings.HasPrefix(m, "<85>1 ") || !strings.Contains(m, " door ") || !strings.Contains(m, `"method":"recorded.start"`) {
			t.Fatalf("syslog message: %q", m)
		}
		// The forwarded line is the audit line itself, chain included.
		line := m[strings.Index(m, "{"):]
		if err := audit.CheckLine([]byte(line), audit.Genesis); err != nil {
			t.Fatalf("forwarded line does not verify: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reached the collector")
	}
}
