package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func testRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_test_expiry_timestamp_seconds", Help: "test"})
	g.Set(1700000000)
	r.MustRegister(g)
	return r
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, slog.New(slog.DiscardHandler), ln, testRegistry()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "rampart_test_expiry_timestamp_seconds 1.7e+09") {
		t.Fatalf("body:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWriteTextfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "acme.prom")
	if err := WriteTextfile(p, testRegistry()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "# TYPE rampart_test_expiry_timestamp_seconds gauge") {
		t.Fatalf("textfile:\n%s", b)
	}
}
