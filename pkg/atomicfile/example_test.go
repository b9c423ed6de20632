package atomicfile_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	opts, err := atomicfile.Owner(0o600, "", "") // keep the current owner
	if err != nil {
		panic(err)
	}
	p := filepath.Join(dir, "tls.key")
	if err := atomicfile.WriteFile(p, []byte("secret"), opts); err != nil {
		panic(err)
	}
	st, _ := os.Stat(p)
	fmt.Println(st.Mode().Perm())
	// Output: -rw-------
}
