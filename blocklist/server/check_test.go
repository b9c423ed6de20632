package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/blocklist/internal/devcert"
	"go4.org/netipx"
)

// The promise of the README, as a reference set.
var refSpecial = func() *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, s := range []string{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "fe80::/10", "ff00::/8"} {
		b.AddPrefix(netip.MustParsePrefix(s))
	}
	set, _ := b.IPSet()
	return set
}()

func randomPrefix(r *rand.Rand) netip.Prefix {
	var a netip.Addr
	switch r.IntN(4) {
	case 0: // somewhere near a special range
		bases := []string{"0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "239.255.255.255", "255.255.255.255",
			"::", "::1", "fe80::1", "ff02::1", "febf::1", "fec0::1", "223.255.255.255", "240.0.0.1", "126.255.255.255", "128.0.0.1"}
		a = netip.MustParseAddr(bases[r.IntN(len(bases))])
	case 1:
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		a = netip.AddrFrom16(b)
	default:
		a = netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	p, _ := a.Prefix(r.IntN(a.BitLen() + 1))
	return p
}

// CheckBannable refuses exactly the prefixes overlapping the special
// ranges (differential against an IPSet of them).
func TestCheckBannableMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 200_000 {
		p := randomPrefix(r)
		want := refSpecial.OverlapsPrefix(p)
		err := CheckBannable(p)
		if (err != nil) != want || (err != nil && !errors.Is(err, ErrNotBannable)) {
			t.Fatalf("CheckBannable(%s) = %v, reference says special: %v", p, err, want)
		}
	}
}

// Ban, report and feed entries refuse the same addresses, for the same
// reason.
func TestSameRefusalsEverywhere(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 1000}})
	admin, rep := h.client("admin", RoleAdmin), h.client("host", RoleReporter)
	ctx := context.Background()
	addrs := []string{"0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "169.254.169.254", "224.0.0.251", "239.1.2.3",
		"255.255.255.255", "::", "::1", "fe80::1", "ff02::fb", "::ffff:127.0.0.1", "192.0.2.1", "10.1.2.3", "2001:db8::1",
		"223.255.255.255", "240.0.0.1", "fec0::1"}
	for _, s := range addrs {
		a := netip.MustParseAddr(s).Unmap()
		p := netip.PrefixFrom(a, a.BitLen())
		banErr := admin.Ban(ctx, p, 0, "test")
		repErr := rep.Report(ctx, client.Report{Addr: a, Reason: "test", Count: 1})
		entryErr := h.srv.checkEntry(p)
		special := refSpecial.Contains(a)
		for what, err := range map[string]error{"ban": banErr, "report": repErr, "feed entry": entryErr} {
			if (err != nil) != special {
				t.Errorf("%s %s: err = %v, special %v", what, s, err, special)
			}
			if err != nil && !strings.Contains(err.Error(), "not bannable") {
				t.Errorf("%s %s: err = %v, want the shared wording", what, s, err)
			}
		}
	}
	// Prefixes overlapping special space, from either side.
	for _, s := range []string{"127.0.0.0/24", "224.0.0.0/8", "255.255.255.0/24", "169.254.0.0/15", "fe80::/64", "::/96"} {
		if err := admin.Ban(ctx, netip.MustParsePrefix(s), 0, "x"); err == nil || !strings.Contains(err.Error(), "not bannable") {
			t.Errorf("ban %s: %v", s, err)
		}
	}
}

// Reasons with control or format characters are refused wherever an
// operator or reporter gives one.
func TestReasonsRefuseControlCharacters(t *testing.T) {
	h := newHarness(t, Config{Policy: Policy{Threshold: 1000}})
	admin, rep := h.client("admin", RoleAdmin), h.client("host", RoleReporter)
	ctx := context.Background()
	for _, reason := range []string{"\x1b[2Jcleared", "line\nbreak", "tab\there", "bidi \u202egnp.exe", "nul\x00", "c1 \u0085", strings.Repeat("a", 201)} {
		if err := admin.Ban(ctx, pfx("192.0.2.1/32"), 0, reason); !errors.Is(err, client.ErrRejected) {
			t.Errorf("ban reason %q: %v", reason, err)
		}
		if err := admin.Allow(ctx, pfx("192.0.2.2/32"), reason); !errors.Is(err, client.ErrRejected) {
			t.Errorf("allow reason %q: %v", reason, err)
		}
		if err := rep.Report(ctx, client.Report{Addr: netip.MustParseAddr("192.0.2.3"), Reason: reason, Count: 1}); !errors.Is(err, client.ErrRejected) {
			t.Errorf("report reason %q: %v", reason, err)
		}
	}
	if err := admin.Ban(ctx, pfx("192.0.2.1/32"), 0, "brute force from Zürich — 5 tries"); err != nil {
		t.Fatalf("printable reason refused: %v", err)
	}
}

// Clients refused at the TLS handshake are logged at warning with their
// address and counted by reason.
func TestHandshakeRefusalsLoggedAndCounted(t *testing.T) {
	h := newHarness(t, Config{})
	other, err := devcert.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := h.ca.TLSCert(devcert.Leaf{Name: "agent", Roles: []string{RoleAgent}})
	expired, _ := h.ca.TLSCert(devcert.Leaf{Name: "old-agent", Roles: []string{RoleAgent}, Validity: -time.Second})
	foreign, _ := other.TLSCert(devcert.Leaf{Name: "stranger", Roles: []string{RoleAgent}})
	dial := func(certs ...tls.Certificate) error {
		// GetClientCertificate sends the certificate even when its issuer
		// is not among the CAs the server asks for (as a misconfigured
		// client would); Certificates would quietly send none.
		tc := &tls.Config{RootCAs: h.ca.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return &tls.Certificate{}, nil
			}
			return &certs[0], nil
		}}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get(h.url + "/v1/sync?have=0")
		if err == nil {
			resp.Body.Close()
		}
		c.CloseIdleConnections()
		return err
	}
	if err := dial(good); err != nil {
		t.Fatalf("good certificate: %v", err)
	}
	for _, tc := range []struct {
		reason string
		certs  []tls.Certificate
	}{
		{HandshakeNoCertificate, nil},
		{HandshakeUnknownCA, []tls.Certificate{foreign}},
		{HandshakeExpired, []tls.Certificate{expired}},
	} {
		if err := dial(tc.certs...); err == nil {
			t.Fatalf("%s: handshake succeeded", tc.reason)
		}
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(h.srv.m.tlsRefused.WithLabelValues(tc.reason)) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not counted; log:\n%s", tc.reason, h.logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	logs := h.logs.String()
	for _, want := range []string{"level=WARN msg=\"blocklistd: TLS handshake refused\" remote=127.0.0.1:", "reason=" + HandshakeNoCertificate} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
	// Same address: only the first refusal of the minute is logged.
	if n := strings.Count(logs, "TLS handshake refused"); n != 1 {
		t.Fatalf("%d refusal lines from one address within a minute, want 1:\n%s", n, logs)
	}
}

// The rate limit: once a minute per address, 10 lines per 10 s in all,
// and the next line says how many were suppressed.
func TestHandshakeLogRateLimit(t *testing.T) {
	var buf syncBuffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hl := newHandshakeLog(newTestLogger(&buf), nil)
	hl.now = func() time.Time { return now }
	line := func(addr string) {
		hl.Write([]byte(handshakePrefix + addr + ": remote error: tls: client didn't provide a certificate\n"))
	}
	for i := range 50 {
		line("192.0.2." + string(rune('0'+i%5)) + ":1234")
	}
	if n := strings.Count(buf.String(), "handshake refused"); n != 5 {
		t.Fatalf("%d lines for 5 addresses, want 5:\n%s", n, buf.String())
	}
	now = now.Add(time.Minute)
	for i := range 20 {
		line("198.51.100." + string(rune('a'+i)) + ":1")
	}
	if n := strings.Count(buf.String(), "handshake refused"); n != 15 {
		t.Fatalf("%d lines, want 15 (10 per 10 s)", n)
	}
	now = now.Add(10 * time.Second)
	line("203.0.113.1:1")
	if !strings.Contains(buf.String(), "suppressed=10") {
		t.Fatalf("the next line does not say 10 were suppressed:\n%s", buf.String())
	}
}

func newTestLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
