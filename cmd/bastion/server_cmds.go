package main

import (
	"context"
	"errors"
)

func cmdServe(ctx context.Context, args []string) error { return errors.New("not implemented yet") }
func cmdUser(ctx context.Context, args []string) error  { return errors.New("not implemented yet") }
func cmdAudit(ctx context.Context, args []string) error { return errors.New("not implemented yet") }
func cmdSSHFP(ctx context.Context, args []string) error { return errors.New("not implemented yet") }
