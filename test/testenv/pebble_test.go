package testenv

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

func TestStartPebble(t *testing.T) {
	t.Parallel()
	a := StartPebble(t, PebbleOptions{})
	b := StartPebble(t, PebbleOptions{})
	if a.DirectoryURL == b.DirectoryURL || a.HTTPPort == b.HTTPPort {
		t.Fatalf("two Pebbles share ports: %s %s", a.DirectoryURL, b.DirectoryURL)
	}
	resp, err := a.Client.Get(a.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"newOrder", "newAccount", "renewalInfo"} {
		if _, ok := dir[k]; !ok {
			t.Errorf("directory lacks %s: %v", k, dir)
		}
	}
	if root := a.Root(t); !strings.Contains(string(root), "BEGIN CERTIFICATE") {
		t.Errorf("roots/0 = %q", root)
	}
	a.ChallSrv(t, "add-a", map[string]any{"host": "x.example", "addresses": []string{"127.0.0.9"}})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, a.DNSAddr)
	}}
	addrs, err := r.LookupHost(t.Context(), "x.example")
	if err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.9" {
		t.Fatalf("challtestsrv DNS answer = %v, %v", addrs, err)
	}
}
