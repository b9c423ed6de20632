package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

// recordingsDir returns --dir if given, else recording.dir from the
// bastion config.
func recordingsDir(dir, cfgPath string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cfg, err := bastion.LoadConfig(cfgPath)
	if err != nil {
		return "", fmt.Errorf("finding the recordings directory (or pass --dir): %w", err)
	}
	if cfg.Recording.Dir == "" {
		return "", fmt.Errorf("%s: recording.dir is not set: recorded sessions are off (or pass --dir)", cfgPath)
	}
	return cfg.Path(cfg.Recording.Dir), nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("replay FILE --speed 2").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bastion replay", flag.ContinueOnError)
	speed := fs.Float64("speed", 1, "playback speed multiplier")
	idle := fs.Float64("idle-limit", 0, "cap pauses at this many `seconds` (0: the recording's own limit, if any)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion replay FILE [--speed N] [--idle-limit S]\n\nPlays a recorded session (asciicast v2) in the terminal.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("want exactly one recording FILE")
	}
	if *speed <= 0 {
		return fmt.Errorf("--speed %v: must be positive", *speed)
	}
	if *idle < 0 {
		return fmt.Errorf("--idle-limit %v: must not be negative", *idle)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := asciicast.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if recorded.IsTransferKind(rd.Header.Kind) {
		fmt.Fprintf(os.Stderr, "bastion replay: %s is the transfer log of an %s session by %s on %s; file transfers are not screen-recorded, these are its file operations:\n",
			pos[0], rd.Header.Kind, rd.Header.User, rd.Header.Target)
		if _, err := recorded.WriteTransfers(os.Stdout, rd); err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		return nil
	}
	err = asciicast.Play(ctx, os.Stdout, rd, asciicast.PlayOptions{
		Speed: *speed, IdleLimit: time.Duration(*idle * float64(time.Second)),
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	return nil
}

func cmdSessions(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bastion sessions", flag.ContinueOnError)
	dir := fs.String("dir", "", "recordings `directory` (default: recording.dir from --config)")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, for recording.dir")
	asJSON := fs.Bool("json", false, "print JSON Lines")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion sessions [--config FILE | --dir DIR] [--json]\n\nLists live and past recorded sessions: live (being recorded), ended, or\ninterrupted (the recorder died; the file holds up to its last flush).\nsftp and scp sessions are listed with their file transfers (they are not\nscreen-recorded).\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	d, err := recordingsDir(*dir, *cfgPath)
	if err != nil {
		return err
	}
	recs, err := recorded.List(d)
	if err != nil {
		return err
	}
	return printSessions(os.Stdout, recs, *asJSON)
}

func printSessions(w io.Writer, recs []recorded.Recording, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			v := map[string]any{
				"id": r.ID, "state": r.State, "file": r.Path, "bytes": r.Size,
				"user": r.Header.User, "source": r.Header.Source, "target": r.Header.Target,
				"remote_user": r.Header.RemoteUser, "command": r.Header.Command,
				"start":      time.Unix(r.Header.Timestamp, 0).UTC().Format(time.RFC3339),
				"duration_s": r.Duration.Seconds(), "kind": r.Kind,
			}
			if recorded.IsTransferKind(r.Kind) {
				v["transfers"], v["transfer_bytes"] = r.Transfers, r.TransferBytes
			}
			if r.Err != nil {
				v["error"] = r.Err.Error()
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSTART (UTC)\tDURATION\tUSER\tTARGET\tSOURCE\tSIZE\tCOMMAND")
	for _, r := range recs {
		start := "?"
		if r.Header.Timestamp > 0 {
			start = time.Unix(r.Header.Timestamp, 0).UTC().Format("2006-01-02 15:04:05")
		}
		cmd, size := r.Header.Command, humanBytes(r.Size)
		if recorded.IsTransferKind(r.Kind) {
			// What the operator wants of a transfer session is what it
			// moved, not the size of its log.
			size = humanBytes(r.TransferBytes)
			noun := "transfers"
			if r.Transfers == 1 {
				noun = "transfer"
			}
			cmd = strings.TrimSpace(fmt.Sprintf("(%d %s) %s", r.Transfers, noun, cmd))
		}
		if r.Err != nil {
			cmd = "(unreadable: " + r.Err.Error() + ")"
		}
		kind := r.Kind
		if kind == "" {
			kind = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, kind, start,
			r.Duration.Round(time.Second), r.Header.User, r.Header.Target, r.Header.Source, size, cmd)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + "K"
	}
	return strconv.FormatInt(n, 10)
}

func cmdWatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bastion watch", flag.ContinueOnError)
	dir := fs.String("dir", "", "recordings `directory` (default: recording.dir from --config)")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, for recording.dir")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion watch ID [--config FILE | --dir DIR]\n\nFollows a live session read-only, from its start, like tail -f; returns when\nthe session ends. Ctrl-C stops watching (the session goes on). IDs come\nfrom `bastion sessions`.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("want exactly one session ID")
	}
	d, err := recordingsDir(*dir, *cfgPath)
	if err != nil {
		return err
	}
	err = recorded.Follow(ctx, d, pos[0], os.Stdout, recorded.FollowOptions{
		OnHeader: func(h asciicast.Header) {
			if recorded.IsTransferKind(h.Kind) {
				fmt.Fprintf(os.Stderr, "bastion watch: %s session of %s@%s from %s: file transfers are not screen-recorded; showing its file operations (Ctrl-C stops watching)\r\n",
					h.Kind, h.User, h.Target, h.Source)
				return
			}
			fmt.Fprintf(os.Stderr, "bastion watch: %s@%s from %s, terminal %dx%d (read-only; Ctrl-C stops watching)\r\n",
				h.User, h.Target, h.Source, h.Width, h.Height)
		},
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err == nil {
		fmt.Fprintf(os.Stderr, "\r\nbastion watch: session %s ended\r\n", pos[0])
	}
	return err
}
