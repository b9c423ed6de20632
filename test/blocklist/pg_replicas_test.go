package blocklist_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rampart-sec/rampart/test/testenv"
)

// Two blocklistd replicas started at the same moment on an empty database
// both come up: the schema is created under an advisory lock held until its
// transaction commits. Several rounds, each on a database of its own, since
// the race is a matter of timing.
func TestPostgresReplicasStartTogether(t *testing.T) {
	bin := buildBlocklistd(t)
	pg := testenv.StartPostgres(t)
	p := newServerPKI(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	const rounds = 5
	for round := range rounds {
		db := fmt.Sprintf("replicas%d", round)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		dsn := strings.Replace(pg.DSN, "/postgres?", "/"+db+"?", 1)
		dir := t.TempDir()
		var cfgs, listens []string
		for i := range 2 {
			listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			cfg := filepath.Join(dir, fmt.Sprintf("blocklistd-%d.yaml", i))
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
tls: {cert: %s, key: %s, client_ca: %s}
store: {driver: postgres, dsn: '%s'}
cli: {cert: %s, key: %s}
`, listen, p.file("blocklistd.pem"), p.file("blocklistd-key.pem"), p.file("ca.pem"), dsn,
				p.file("admin.pem"), p.file("admin-key.pem"))), 0o600); err != nil {
				t.Fatal(err)
			}
			cfgs, listens = append(cfgs, cfg), append(listens, listen)
		}
		// Start both, then wait: neither may exit, both must listen.
		procs := make([]*exec.Cmd, 2)
		logs := make([]*lockedBuffer, 2)
		exited := make([]chan error, 2)
		var start sync.WaitGroup
		start.Add(1)
		var ready sync.WaitGroup
		for i := range 2 {
			logs[i] = &lockedBuffer{}
			procs[i] = exec.Command(bin, "serve", "--config", cfgs[i])
			procs[i].Stderr = logs[i]
			ready.Add(1)
			go func() {
				defer ready.Done()
				start.Wait()
				if err := procs[i].Start(); err != nil {
					t.Error(err)
				}
			}()
		}
		start.Done()
		ready.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for i := range 2 {
			exited[i] = make(chan error, 1)
			go func() { exited[i] <- procs[i].Wait() }()
			t.Cleanup(func() {
				procs[i].Process.Kill()
				<-exited[i]
			})
		}
		for i := range 2 {
			waitListenOrExit(t, fmt.Sprintf("round %d: replica %d", round, i), listens[i], exited[i], logs[i])
		}
		// Both serve the same store: a ban through one is listed by the other.
		prefix := fmt.Sprintf("192.0.2.%d/32", round+1)
		if out, err := exec.Command(bin, "ban", prefix, "--config", cfgs[0]).CombinedOutput(); err != nil {
			t.Fatalf("round %d: ban through replica 0: %v\n%s", round, err, out)
		}
		agent := &serverAgent{c: p.client(t, "https://"+listens[1], "agent")}
		agent.syncUntil(t, fmt.Sprintf("round %d: ban made on replica 0, seen through replica 1", round),
			func(s map[netip.Prefix]bool) bool { return s[netip.MustParsePrefix(prefix)] })
		for i := range 2 {
			procs[i].Process.Kill()
			<-exited[i]
			exited[i] <- nil // for the cleanup
		}
	}
}

// waitListenOrExit waits until addr accepts connections, failing at once
// with the daemon's log if it exits first.
func waitListenOrExit(t *testing.T, what, addr string, exited chan error, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before listening (%v):\n%s", what, err, logs)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30s:\n%s", what, addr, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
