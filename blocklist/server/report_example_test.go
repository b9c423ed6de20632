package server_test

import (
	"fmt"

	"github.com/rampart-sec/rampart/blocklist/server"
)

// ParseReport is the check blocklistd applies to every report, usable by a
// reporter before it sends one.
func ExampleParseReport() {
	addr, count, err := server.ParseReport(server.Report{Addr: "203.0.113.7", Reason: "sshd: 5 failures", Count: 5, Window: "10m"})
	fmt.Println(addr, count, err)
	_, _, err = server.ParseReport(server.Report{Addr: "127.0.0.1", Reason: "x", Count: 1})
	fmt.Println(err != nil)
	// Output:
	// 203.0.113.7 5 <nil>
	// true
}
