package main

import (
	"context"
	"errors"
)

func cmdReplay(ctx context.Context, args []string) error   { return errors.New("not implemented yet") }
func cmdSessions(ctx context.Context, args []string) error { return errors.New("not implemented yet") }
func cmdWatch(ctx context.Context, args []string) error    { return errors.New("not implemented yet") }
