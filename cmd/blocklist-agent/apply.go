package main

import (
	"context"
	"errors"
)

func cmdApply(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
