package main

import (
	"context"
	"errors"
)

func cmdFlush(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
