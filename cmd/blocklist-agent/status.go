package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/rampart-sec/rampart/blocklist/agent"
	"github.com/rampart-sec/rampart/internal/cli"
)

func cmdStatus(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	path := fset.String("config", defaultConfig, "configuration `FILE`, to find the state directory")
	stateDir := fset.String("state-dir", "", "state `DIR` of the agent (overrides the configuration's state_dir)")
	asJSON := fset.Bool("json", false, "print the status as JSON (with a \"running\" field)")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), `usage: blocklist-agent status [--config FILE | --state-dir DIR] [--json]

Show the blocklistd version this host enforces, its entry counts, the last
sync and whether blocklistd is reachable. Asks the running agent through
its socket; when the agent is not running, shows what it last wrote and
says so. Exit status: 0 running, 3 not running (as LSB status verbs).

flags:
`)
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	dir := *stateDir
	if dir == "" {
		cfg, err := agent.LoadConfig(*path)
		switch {
		case err == nil:
			dir = cfg.StateDir
		case errors.Is(err, fs.ErrNotExist) && *path == defaultConfig:
			dir = agent.DefaultStateDir
		default:
			return err
		}
	}
	st, running, err := agent.QueryStatus(ctx, dir)
	if errors.Is(err, agent.ErrNoStatus) {
		fmt.Fprintf(os.Stderr, "blocklist-agent status: not running: %s: %v\n", dir, err)
		return cli.ExitStatus(3)
	}
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if *asJSON {
		out := struct {
			Running bool `json:"running"`
			agent.Status
		}{running, st}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printStatus(os.Stdout, st, running, time.Now())
	}
	if !running {
		return cli.ExitStatus(3)
	}
	return nil
}

func printStatus(w io.Writer, st agent.Status, running bool, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), now.Sub(t).Round(time.Second))
	}
	if running {
		fmt.Fprintf(w, "agent:        running (pid %d, started %s)\n", st.PID, ago(st.Started))
	} else {
		fmt.Fprintf(w, "agent:        NOT RUNNING (last status written %s); the firewall keeps what it enforced\n", ago(st.Updated))
	}
	reach := "reachable"
	if !st.Reachable {
		reach = "UNREACHABLE"
	}
	if st.Failures > 0 {
		reach += fmt.Sprintf(", %d failed attempts in a row", st.Failures)
	}
	fmt.Fprintf(w, "server:       %s, %s\n", st.Server, reach)
	if st.Backend != "" {
		fmt.Fprintf(w, "firewall:     %s, table %s\n", st.Backend, st.Table)
	}
	if st.LastError != "" && st.Failures > 0 {
		fmt.Fprintf(w, "last error:   %s: %s\n", ago(st.ErrorAt), st.LastError)
	}
	version := fmt.Sprint(st.Version)
	if st.Version == 0 {
		version = "none (nothing received from blocklistd yet)"
	}
	if st.Restored {
		version += " (from the saved snapshot; blocklistd has not answered since the start)"
	}
	fmt.Fprintf(w, "version:      %s\n", version)
	fmt.Fprintf(w, "entries:      %d (IPv4 %d, IPv6 %d)", st.Entries, st.IPv4, st.IPv6)
	if st.Allowlisted > 0 || st.Refused > 0 {
		fmt.Fprintf(w, "; %d trimmed by the allowlist, %d refused as too broad", st.Allowlisted, st.Refused)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "last sync:    %s\n", ago(st.LastSync))
	fmt.Fprintf(w, "last change:  %s\n", ago(st.LastChange))
}
