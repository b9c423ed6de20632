package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/blocklist/client"
	"github.com/rampart-sec/rampart/firewall"
	"github.com/rampart-sec/rampart/firewall/firewalltest"
)

// oneSnapshot stands in for blocklistd: one full snapshot, then silence.
type oneSnapshot struct{ sent chan struct{} }

func (s oneSnapshot) Sync(ctx context.Context, have uint64, wait time.Duration) (client.Update, error) {
	if have == 0 {
		return client.Update{Version: 1, Full: true, Entries: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, nil
	}
	close(s.sent)
	<-ctx.Done()
	return client.Update{}, ctx.Err()
}

func ExampleAgent() {
	dir, _ := os.MkdirTemp("", "agent")
	defer os.RemoveAll(dir)
	backend := &firewalltest.Backend{} // firewall/nftables or firewall/pf in production
	server := oneSnapshot{sent: make(chan struct{})}
	a, _ := agent.New(agent.Options{
		Backend:  backend,
		Server:   server, // a *client.Client in production
		StateDir: dir,
		Policy:   firewall.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	<-server.sent
	cancel()
	<-done

	fmt.Println("192.0.2.9 blocked:", backend.Contains(netip.MustParseAddr("192.0.2.9")))
	fmt.Println("192.0.2.10 blocked:", backend.Contains(netip.MustParseAddr("192.0.2.10")))
	st, running, _ := agent.QueryStatus(context.Background(), dir)
	fmt.Println("version:", st.Version, "running:", running)
	// Output:
	// 192.0.2.9 blocked: true
	// 192.0.2.10 blocked: false
	// version: 1 running: false
}
