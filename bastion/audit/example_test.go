package audit_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-sec/rampart/bastion/audit"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.jsonl")

	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		panic(err)
	}
	log.Append(audit.Record{Type: audit.TypeAuth, User: "alice", Source: "192.0.2.7", Method: "totp", Result: audit.ResultSuccess})
	log.Append(audit.Record{Type: audit.TypeJump, User: "alice", Target: "web1", BytesIn: 4096, BytesOut: 65536, Duration: (90 * time.Second).Seconds()})
	log.Close()

	f, _ := os.Open(path)
	defer f.Close()
	n, err := audit.Verify(f)
	fmt.Println(n, err)
	// Output: 2 <nil>
}

// An importer reads the records with their hashes; the last hash it took
// is where it resumes (or what it compares with a copy sent to syslog).
func ExampleReader() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.jsonl")
	log, _ := audit.Open(path, audit.Options{})
	log.Append(audit.Record{Type: audit.TypeAuth, User: "alice", Source: "192.0.2.7", Method: "totp", Result: audit.ResultFailure})
	log.Append(audit.Record{Type: audit.TypeAuth, User: "alice", Source: "192.0.2.7", Method: "totp", Result: audit.ResultSuccess})
	last := log.LastHash()
	log.Close()

	f, _ := os.Open(path)
	defer f.Close()
	r := audit.NewReader(f)
	for {
		rec, err := r.Next()
		if err != nil {
			fmt.Println(err, r.Records())
			break
		}
		fmt.Println(rec.User, rec.Result, len(rec.Hash), rec.Hash == last)
	}
	// Output:
	// alice failure 64 false
	// alice success 64 true
	// EOF 2
}
