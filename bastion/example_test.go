package bastion_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/rampart-sec/rampart/bastion"
)

// Example starts a bastion from a config file, as `bastion serve` does.
func Example() {
	dir, _ := os.MkdirTemp("", "bastion")
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "bastion.yaml")
	os.WriteFile(cfgPath, []byte(`
state_dir: state
targets:
  - {name: web1, addr: "10.0.0.5:22"}
users:
  alice:
    keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMwTfnuYTEdMrekLKuUkCjarQHf3fhXGKot9eY38xuKe alice@laptop"]
    targets: [web1]
`), 0o600)

	cfg, err := bastion.LoadConfig(cfgPath)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, closeAudit, err := bastion.Setup(ctx, cfg, bastion.Deps{})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()

	// ... users connect with "ssh -J alice@HOST web1" ...

	cancel()
	fmt.Println(<-done, closeAudit())
	// Output: <nil> <nil>
}

func ExamplePolicy_Resolve() {
	cfg, _ := bastion.ParseConfig("bastion.yaml", []byte(`
targets:
  - {name: web1, addr: "10.0.0.5:22"}
users:
  alice:
    keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMwTfnuYTEdMrekLKuUkCjarQHf3fhXGKot9eY38xuKe"]
    targets: [web1, "10.0.1.0/24:22"]
`))
	p, _ := bastion.NewPolicy(cfg)
	for _, dest := range []string{"web1", "10.0.1.7", "10.0.2.7"} {
		r, err := p.Resolve(context.Background(), "alice", dest, 22)
		fmt.Println(dest, r.Dial, err)
	}
	// Output:
	// web1 10.0.0.5:22 <nil>
	// 10.0.1.7 10.0.1.7:22 <nil>
	// 10.0.2.7  destination not allowed: 10.0.2.7:22 is not in alice's targets
}
