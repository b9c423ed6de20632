package testenv

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Host is a network namespace standing in for one machine: its own
// interfaces, routes, sockets and nftables ruleset.
type Host struct {
	Name string // namespace name, as `ip netns` knows it
	t    testing.TB
}

// NewHost creates a fresh network namespace with loopback up, deleted when
// the test ends.
func NewHost(t testing.TB) *Host {
	t.Helper()
	RequireRoot(t)
	Binary(t, "ip")
	h := &Host{Name: UniqueName("rp"), t: t}
	if out, err := exec.Command("ip", "netns", "add", h.Name).CombinedOutput(); err != nil {
		Need(t, fmt.Sprintf("cannot create a network namespace: %v: %s", err, out))
	}
	t.Cleanup(func() {
		// Deleting the namespace takes its veth ends and ruleset with it.
		exec.Command("ip", "netns", "del", h.Name).Run()
	})
	h.MustRun("ip", "link", "set", "lo", "up")
	return h
}

// Path is the namespace's file, for setns(2) or nftables.WithNetNSFd.
func (h *Host) Path() string { return "/run/netns/" + h.Name }

// Command returns a command that runs inside the namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (h *Host) Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := h.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %v in %s: %w: %s", name, args, h.Name, err, out.Bytes())
	}
	return out.String(), err
}

// MustRun is Run that fails the test on error.
func (h *Host) MustRun(name string, args ...string) string {
	h.t.Helper()
	out, err := h.Run(name, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace, so Go code (a
// listener, a dial, a netlink socket) lives there. Sockets opened inside fn
// stay in the namespace after it returns.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine instead
		// of returning to the pool in a foreign namespace.
		runtime.LockOSThread()
		f, err := os.Open(h.Path())
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", h.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

var linkSeq atomic.Uint32

// Link is one veth pair joining two hosts, with an IPv4 /30 and an IPv6 /64
// on it. The addresses exist only inside the two namespaces.
type Link struct {
	A, B     *Host
	IfA, IfB string
	A4, B4   netip.Addr
	A6, B6   netip.Addr
}

// Connect joins a and b with a veth pair and addresses both ends.
func Connect(t testing.TB, a, b *Host) *Link {
	t.Helper()
	n := linkSeq.Add(1)
	l := &Link{
		A: a, B: b,
		IfA: "veth" + fmt.Sprint(n) + "a", IfB: "veth" + fmt.Sprint(n) + "b",
		A4: netip.AddrFrom4([4]byte{10, byte(n >> 6), byte(n<<2) & 0xfc, 1}),
		B4: netip.AddrFrom4([4]byte{10, byte(n >> 6), byte(n<<2) & 0xfc, 2}),
		A6: netip.MustParseAddr(fmt.Sprintf("fd00:%x::1", n)),
		B6: netip.MustParseAddr(fmt.Sprintf("fd00:%x::2", n)),
	}
	// Created directly inside the namespaces, so the names never meet in
	// the root namespace where parallel tests could collide.
	if out, err := exec.Command("ip", "link", "add", l.IfA, "netns", a.Name, "type", "veth", "peer", "name", l.IfB, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("testenv: veth: %v: %s", err, out)
	}
	for _, end := range []struct {
		h      *Host
		ifname string
		v4, v6 netip.Addr
	}{{a, l.IfA, l.A4, l.A6}, {b, l.IfB, l.B4, l.B6}} {
		end.h.MustRun("ip", "addr", "add", end.v4.String()+"/30", "dev", end.ifname)
		end.h.MustRun("ip", "-6", "addr", "add", end.v6.String()+"/64", "dev", end.ifname, "nodad")
		end.h.MustRun("ip", "link", "set", end.ifname, "up")
	}
	return l
}
