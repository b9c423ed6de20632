package bastion

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/rampart-sec/rampart/bastion/dest"
)

// Self knows where the bastion itself listens, so that no rule, however
// broad (127.0.0.0/8:*, 0.0.0.0/0:*), can make it jump to its own SSH or
// metrics listener: a jump to itself would be a second login that
// inherits the first one's factors and hides the real destination from
// the audit log. A destination is the bastion when its port is one of the
// bastion's listening ports and its address is loopback, an address of one
// of the host's interfaces, or an address the bastion listens on. It is
// safe for concurrent use.
type Self struct {
	hostAddrs func() ([]netip.Addr, error)

	mu    sync.Mutex
	ports map[uint16]bool
	addrs map[netip.Addr]bool // listeners bound to one address
}

// NewSelf returns a Self with no ports yet. hostAddrs lists the host's
// addresses; nil means its interfaces' addresses, read at each check (so
// an address that comes later with DHCP or a VPN counts too).
func NewSelf(hostAddrs func() ([]netip.Addr, error)) *Self {
	if hostAddrs == nil {
		hostAddrs = interfaceAddrs
	}
	return &Self{hostAddrs: hostAddrs, ports: map[uint16]bool{}, addrs: map[netip.Addr]bool{}}
}

// Add records a listener: "host:port", ":port" or a net.Addr's String.
func (s *Self) Add(hostport string) error {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("listener %q: %w", hostport, err)
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return fmt.Errorf("listener %q: port %q: %w", hostport, ps, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p != 0 {
		s.ports[uint16(p)] = true
	}
	if h, err := dest.ParseHost(host); err == nil {
		if a, ok := h.Addr(); ok {
			s.addrs[a] = true
		}
	}
	return nil
}

func (s *Self) addPorts(o *Self) {
	if o == nil || o == s {
		return
	}
	o.mu.Lock()
	ports, addrs := make([]uint16, 0, len(o.ports)), make([]netip.Addr, 0, len(o.addrs))
	for p := range o.ports {
		ports = append(ports, p)
	}
	for a := range o.addrs {
		addrs = append(addrs, a)
	}
	o.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ports {
		s.ports[p] = true
	}
	for _, a := range addrs {
		s.addrs[a] = true
	}
}

// Is reports whether ap (canonical) is the bastion itself. When the
// host's addresses cannot be read it says yes, with the error: a jump
// that cannot be told apart from a self-jump is refused.
func (s *Self) Is(ap netip.AddrPort) (bool, error) {
	s.mu.Lock()
	listening := s.ports[ap.Port()]
	bound := s.addrs[ap.Addr()]
	s.mu.Unlock()
	if !listening {
		return false, nil
	}
	a := ap.Addr()
	if bound || a.IsLoopback() || a.IsUnspecified() {
		return true, nil
	}
	host, err := s.hostAddrs()
	if err != nil {
		return true, fmt.Errorf("host addresses: %w", err)
	}
	for _, h := range host {
		if h.Unmap().WithZone("") == a {
			return true, nil
		}
	}
	return false, nil
}

func interfaceAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(ifas))
	for _, ia := range ifas {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}
