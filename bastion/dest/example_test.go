package dest_test

import (
	"fmt"

	"github.com/rampart-sec/rampart/bastion/dest"
)

func ExampleParseHost() {
	for _, s := range []string{"::ffff:7f00:1", "2130706433", "0x7f.1", "127.1", "DB1.Example.ORG.", "fe80::1%eth0", "1.2.3.256"} {
		h, err := dest.ParseHost(s)
		fmt.Printf("%-18s %v %v\n", s, h, err)
	}
	// Output:
	// ::ffff:7f00:1      127.0.0.1 <nil>
	// 2130706433         127.0.0.1 <nil>
	// 0x7f.1             127.0.0.1 <nil>
	// 127.1              127.0.0.1 <nil>
	// DB1.Example.ORG.   db1.example.org <nil>
	// fe80::1%eth0        invalid destination: "fe80::1%eth0": zones are not allowed
	// 1.2.3.256           invalid destination: "1.2.3.256": numeric, but not an IPv4 address
}

func ExampleParse() {
	d, err := dest.Parse("[::ffff:10.0.0.6]:022")
	fmt.Println(d, err)
	// Output: 10.0.0.6:22 <nil>
}
