package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Postgres is a throwaway PostgreSQL server.
type Postgres struct {
	DSN string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Dir string
}

// StartPostgres initialises a cluster in a temporary directory, starts it on
// a free loopback port with trust authentication, and stops it at cleanup.
// As root the server runs as the "postgres" user, since PostgreSQL refuses
// to run as root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	initdb := Binary(t, "initdb")
	postgres := Binary(t, "postgres")
	var runAs []string
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Need(t, "the postgres user does not exist (apt-get install postgresql)")
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runAs = []string{Binary(t, "runuser"), "-u", "postgres", "--"}
	}
	dir, err := os.MkdirTemp("", "rampart-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	args := append(append([]string{}, runAs...), initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	port := FreePort(t)
	args = append(append([]string{}, runAs...), postgres, "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	srv := exec.Command(args[0], args[1:]...)
	logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatalf("testenv: postgres: %v", err)
	}
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown.
		syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitTCP(context.Background(), addr, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		t.Fatalf("testenv: postgres did not start: %v\n%s", err, log)
	}
	// Accepting TCP is not yet accepting queries; pg_isready knows.
	if isready := LookPath("pg_isready"); isready != "" {
		deadline := time.Now().Add(30 * time.Second)
		for exec.Command(isready, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port)).Run() != nil {
			if time.Now().After(deadline) {
				t.Fatal("testenv: postgres never became ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return &Postgres{
		DSN: fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr),
		Dir: dir,
	}
}

// waitTCP dials addr until it answers or the timeout passes.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
