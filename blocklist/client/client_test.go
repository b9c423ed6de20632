package client_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"github.com/rampart-sec/rampart/blocklist/internal/wire"
)

// minimalServer speaks the protocol with fixed answers, so the client is
// tested without the real server (which has its own tests).
func minimalServer(t *testing.T) (*httptest.Server, *devcert.CA, chan wire.Report) {
	t.Helper()
	ca, err := devcert.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.TLSCert(devcert.Leaf{Name: "server", Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan wire.Report, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathSync, func(w http.ResponseWriter, r *http.Request) {
		have, _ := strconv.ParseUint(r.URL.Query().Get("have"), 10, 64)
		w.Header().Set("Content-Type", wire.MediaType)
		switch have {
		case 0:
			w.Write(wire.Bytes(wire.Update{Version: 7, Full: true, Entries: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/64")}}))
		case 7:
			w.Write(wire.Bytes(wire.Update{Version: 8, Add: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
				Remove: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}))
		default:
			w.WriteHeader(http.StatusNotModified)
		}
	})
	mux.HandleFunc("POST "+wire.PathReport, func(w http.ResponseWriter, r *http.Request) {
		var rep wire.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		if rep.Reason == "flood" {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"slow down"}`))
			return
		}
		reports <- rep
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca, reports
}

func newClient(t *testing.T, srv *httptest.Server, ca *devcert.CA) *client.Client {
	t.Helper()
	cert, err := ca.TLSCert(devcert.Leaf{Name: "agent-1", Roles: []string{"agent", "reporter"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{URL: srv.URL, TLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSync(t *testing.T) {
	srv, ca, _ := minimalServer(t)
	c := newClient(t, srv, ca)
	ctx := context.Background()
	u, err := c.Sync(ctx, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/64")}
	if !u.Full || u.Version != 7 || !slices.Equal(u.Entries, want) {
		t.Fatalf("full sync = %+v, want version 7 with %v", u, want)
	}
	u, err = c.Sync(ctx, 7, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if u.Full || u.Version != 8 || len(u.Add) != 1 || len(u.Remove) != 1 {
		t.Fatalf("delta = %+v", u)
	}
	u, err = c.Sync(ctx, 8, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 8 || u.Full || len(u.Add)+len(u.Remove) != 0 {
		t.Fatalf("no-change answer = %+v", u)
	}
}

func TestReport(t *testing.T) {
	srv, ca, reports := minimalServer(t)
	c := newClient(t, srv, ca)
	ctx := context.Background()
	err := c.Report(ctx, client.Report{Addr: netip.MustParseAddr("203.0.113.9"), Reason: "sshd", Count: 3, Window: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	got := <-reports
	if got != (wire.Report{Addr: "203.0.113.9", Reason: "sshd", Count: 3, Window: "10m0s"}) {
		t.Fatalf("server got %+v", got)
	}
	err = c.Report(ctx, client.Report{Addr: netip.MustParseAddr("203.0.113.9"), Reason: "flood", Count: 1})
	if !errors.Is(err, client.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
}

func TestNoClientCertificateRefused(t *testing.T) {
	srv, ca, _ := minimalServer(t)
	c, err := client.New(client.Config{URL: srv.URL, TLS: &tls.Config{RootCAs: ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sync(context.Background(), 0, time.Second); err == nil {
		t.Fatal("sync without a client certificate succeeded")
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []client.Config{
		{URL: "http://example.org", TLS: &tls.Config{}},
		{URL: "https://example.org"},
		{URL: "://"},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
