package detect_test

import (
	"fmt"

	"github.com/rampart-sec/rampart/blocklist/detect"
)

func ExampleJSONFields() {
	// The bastion's audit log: one JSON object per line.
	m := detect.JSONFields{Fields: map[string]string{"type": "auth", "result": "failure"}, AddrField: "source"}
	for _, line := range []string{
		`{"type":"auth","result":"failure","source":"192.0.2.7:51234","user":"root"}`,
		`{"type":"auth","result":"success","source":"198.51.100.1:40000","user":"alice"}`,
	} {
		if addr, ok := m.Match([]byte(line)); ok {
			fmt.Println("offender:", addr)
		}
	}
	// Output: offender: 192.0.2.7
}

func ExampleNewSSHD() {
	m := detect.NewSSHD()
	// The user name is the client's choice; the address sshd appends is what counts.
	addr, ok := m.Match([]byte("Nov 22 04:13:34 web1 sshd[812]: Invalid user x from 10.9.9.9 port 22 from 192.0.2.30 port 4444"))
	fmt.Println(addr, ok)
	// Output: 192.0.2.30 true
}

func ExampleConfig_Build() {
	d, err := detect.Config{Name: "web", Type: "nginx", File: "/var/log/nginx/access.log", Threshold: 20}.Build(nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Name, d.Count, d.Window)
	// Output: web 20 10m0s
}
