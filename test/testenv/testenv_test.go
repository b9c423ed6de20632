package testenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelperWouldSkip is run by TestNeedFailsWhenRequired in a child process.
func TestHelperWouldSkip(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "" {
		t.Skip("only run as a child of TestNeedFailsWhenRequired")
	}
	Need(t, "pretend the kernel lacks nftables")
}

// TestNeedFailsWhenRequired shows that CI cannot pass on a skipped test: the
// same test skips without REQUIRE_INTEGRATION and fails with it.
func TestNeedFailsWhenRequired(t *testing.T) {
	for _, tc := range []struct {
		require  string
		wantFail bool
		want     string
	}{
		{"", false, "SKIP: TestHelperWouldSkip"},
		{"1", true, "FAIL: TestHelperWouldSkip"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperWouldSkip$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "REQUIRE_INTEGRATION="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("REQUIRE_INTEGRATION=%q: err=%v, output:\n%s", tc.require, err, out)
		}
	}
}

func TestNetnsHostsTalkOverVeth(t *testing.T) {
	a, b := NewHost(t), NewHost(t)
	l := Connect(t, a, b)
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(l.B6.String(), "7000"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	if err := a.Do(func() error {
		c, err := net.Dial("tcp", net.JoinHostPort(l.B6.String(), "7000"))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 5)
		_, err = c.Read(buf)
		if string(buf) != "hello" {
			t.Errorf("read %q", buf)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a.MustRun("ping", "-c1", "-W2", l.B4.String())
	// The address does not exist outside the namespaces.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(l.B6.String(), "7000"), 200e6); err == nil {
		c.Close()
		t.Fatal("namespace address reachable from the root namespace")
	}
}

func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	psql := Binary(t, "psql")
	out, err := exec.Command(psql, pg.DSN, "-Atc", "select 40+2").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql: %v: %s", err, out)
	}
}
