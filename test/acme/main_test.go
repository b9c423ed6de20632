package acme_test

import (
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	legolog "github.com/go-acme/lego/v4/log"

	"github.com/rampart-sec/rampart/test/testenv"
)

// binDir holds the acme-renew binaries built for this test process.
var binDir string

var builds sync.Map // build tags -> *binaryBuild

type binaryBuild struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// acmeRenewBinary builds cmd/acme-renew with the given tags once per test
// process (every test that drives the binary shares it).
func acmeRenewBinary(t *testing.T, tags ...string) string {
	t.Helper()
	key := strings.Join(tags, ",")
	v, _ := builds.LoadOrStore(key, &binaryBuild{})
	b := v.(*binaryBuild)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "acme-renew"+strings.ReplaceAll("-"+key, ",", "-"))
		args := []string{"build", "-o", b.path}
		if key != "" {
			args = append(args, "-tags", key)
		}
		b.out, b.err = exec.Command("go", append(args, filepath.Join(testenv.ModuleRoot(), "cmd", "acme-renew"))...).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build cmd/acme-renew (tags %q): %v\n%s", key, b.err, b.out)
	}
	return b.path
}

func TestMain(m *testing.M) {
	// lego logs through a package-level logger; the renewer's own slog
	// output is what the tests look at.
	if os.Getenv("ACME_TEST_LEGO_LOG") == "" {
		legolog.Logger = log.New(io.Discard, "", 0)
	}
	var err error
	if binDir, err = os.MkdirTemp("", "acme-renew-bin-"); err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}
