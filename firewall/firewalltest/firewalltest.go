// Package firewalltest provides an in-memory [firewall.Backend] that
// records every call, for unit tests of code that drives a backend (the
// agent, the apply helper) without a kernel.
package firewalltest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"go4.org/netipx"

	"github.com/rampart-sec/rampart/firewall"
)

// Call is one recorded method call.
type Call struct {
	Method string         // "Replace", "Apply", "Current" or "Remove"
	Set    *netipx.IPSet  // the argument of Replace
	Delta  firewall.Delta // the argument of Apply
}

func (c Call) String() string {
	switch c.Method {
	case "Replace":
		return fmt.Sprintf("Replace(%v)", c.Set.Prefixes())
	case "Apply":
		return fmt.Sprintf("Apply(+%v -%v)", c.Delta.Add, c.Delta.Remove)
	}
	return c.Method + "()"
}

// Backend is a fake [firewall.Backend] that keeps the enforced set in
// memory. It is safe for concurrent use. The zero value is empty and ready.
type Backend struct {
	mu    sync.Mutex
	set   netipx.IPSet
	calls []Call
	// Err, when set, makes every later call fail with it, leaving the set
	// as it was (as a real backend's failed transaction does).
	Err error
}

var _ firewall.Backend = (*Backend)(nil)

// Replace makes the enforced set exactly set.
func (b *Backend) Replace(ctx context.Context, set *netipx.IPSet) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Method: "Replace", Set: set})
	if err := b.fail(ctx); err != nil {
		return err
	}
	if set == nil {
		b.set = netipx.IPSet{}
	} else {
		b.set = *set
	}
	return nil
}

// Apply removes, then adds, as [firewall.Delta] says.
func (b *Backend) Apply(ctx context.Context, d firewall.Delta) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Method: "Apply", Delta: d})
	if err := b.fail(ctx); err != nil {
		return err
	}
	set, err := d.ApplyTo(&b.set)
	if err != nil {
		return err
	}
	b.set = *set
	return nil
}

// Current returns the enforced set.
func (b *Backend) Current(ctx context.Context) (*netipx.IPSet, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Method: "Current"})
	if err := b.fail(ctx); err != nil {
		return nil, err
	}
	var sb netipx.IPSetBuilder
	sb.AddSet(&b.set)
	return sb.IPSet()
}

// Remove empties the enforced set.
func (b *Backend) Remove(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, Call{Method: "Remove"})
	if err := b.fail(ctx); err != nil {
		return err
	}
	b.set = netipx.IPSet{}
	return nil
}

func (b *Backend) fail(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.Err
}

// Calls returns the calls made so far, oldest first.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}

// Contains reports whether addr is currently blocked.
func (b *Backend) Contains(addr netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.set.Contains(addr)
}

// Prefixes returns the enforced set as sorted prefixes.
func (b *Backend) Prefixes() []netip.Prefix {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.set.Prefixes()
}
