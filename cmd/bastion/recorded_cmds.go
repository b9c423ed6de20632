package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/rampart-sec/rampart/bastion"
	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
	"github.com/rampart-sec/rampart/internal/cli"
)

func cmdReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bastion replay", flag.ContinueOnError)
	speed := fs.Float64("speed", 1, "playback speed multiplier")
	idle := fs.Float64("idle-limit", 0, "cap pauses at this many `seconds` (0: the recording's own limit, if any)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion replay FILE [--speed N] [--idle-limit S]\n\nPlays a recorded session (asciicast v2) in the terminal.\n\n")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterspersed(fs, args)
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
	pos, err := cli.ParseInterspersed(fs, args)
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
	d, err := bastion.RecordingsDir(*dir, *cfgPath)
	if err != nil {
		return err
	}
	recs, err := recorded.List(d)
	if err != nil {
		return err
	}
	if *asJSON {
		return recorded.WriteJSONLines(os.Stdout, recs)
	}
	return recorded.WriteTable(os.Stdout, recs)
}

func cmdWatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bastion watch", flag.ContinueOnError)
	dir := fs.String("dir", "", "recordings `directory` (default: recording.dir from --config)")
	cfgPath := fs.String("config", defaultConfig, "bastion.yaml, for recording.dir")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bastion watch ID [--config FILE | --dir DIR]\n\nFollows a live session read-only, from its start, like tail -f; returns when\nthe session ends. Ctrl-C stops watching (the session goes on). IDs come\nfrom `bastion sessions`.\n\n")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterspersed(fs, args)
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
	d, err := bastion.RecordingsDir(*dir, *cfgPath)
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
