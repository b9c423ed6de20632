package acme_test

import (
	"io"
	"log"
	"os"
	"testing"

	legolog "github.com/go-acme/lego/v4/log"
)

func TestMain(m *testing.M) {
	// lego logs through a package-level logger; the renewer's own slog
	// output is what the tests look at.
	if os.Getenv("ACME_TEST_LEGO_LOG") == "" {
		legolog.Logger = log.New(io.Discard, "", 0)
	}
	os.Exit(m.Run())
}
