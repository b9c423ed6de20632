package main

import (
	"context"
	"errors"
)

func cmdStatus(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
