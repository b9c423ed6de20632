//go:build pkiclient

package main

import (
	"context"
	"errors"
)

// A host-only build (go build -tags pkiclient ./cmd/pki) leaves the CA
// server out: every other verb works, and the binary stays small.
func cmdServe(context.Context, []string) error {
	return errors.New("this pki binary was built for hosts (-tags pkiclient) without the CA server; use a full build to run pki serve")
}
