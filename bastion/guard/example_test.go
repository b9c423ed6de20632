package guard_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/rampart-sec/rampart/bastion/guard"
)

func Example() {
	g := guard.New(guard.Config{SourceThreshold: 3, Lockout: 15 * time.Minute, BackoffBase: time.Second}, guard.Options{})
	attacker := netip.MustParseAddr("198.51.100.9")
	for range 3 {
		wait := g.Fail(attacker, "", "wrong code")
		fmt.Println("answer after", wait)
	}
	locked, why := g.Locked(attacker, "")
	fmt.Println(locked, why)
	// Output:
	// answer after 1s
	// answer after 2s
	// answer after 4s
	// true source locked out after repeated failures
}
