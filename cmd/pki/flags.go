package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/pkg/config"
	"github.com/rampart-sec/rampart/pki/client"
)

// fileFlags adds --owner, --group and --key-mode to fs and returns what
// they say as client.FileOptions.
func fileFlags(fs *flag.FlagSet) func() (client.FileOptions, error) {
	owner := fs.String("owner", "", "user owning the written files (default: current)")
	group := fs.String("group", "", "group owning the written files")
	keyMode := fs.String("key-mode", "0600", "mode of key.pem (0640 lets --group read it)")
	return func() (client.FileOptions, error) {
		m, err := strconv.ParseUint(*keyMode, 8, 32)
		if err != nil {
			return client.FileOptions{}, fmt.Errorf("--key-mode %q: %w", *keyMode, err)
		}
		return client.FileOptions{User: *owner, Group: *group, KeyMode: os.FileMode(m)}, nil
	}
}

// readToken returns the token of --token or --token-file.
func readToken(tok, file string) (string, error) {
	if tok != "" && file != "" {
		return "", errors.New("give --token or --token-file, not both")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		tok = string(b)
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", errors.New("missing --token")
	}
	return tok, nil
}

// durationFlag is a duration flag that also takes days ("1d", "7d12h"),
// as every config file does.
func durationFlag(fs *flag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	d := def
	fs.Func(name, usage+" (default "+def.String()+")", func(s string) error {
		v, err := config.ParseDuration(s)
		if err != nil {
			return err
		}
		d = v
		return nil
	})
	return &d
}
