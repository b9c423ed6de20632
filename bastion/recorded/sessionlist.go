package recorded

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSONLines prints recs as "bastion sessions --json" does: one JSON
// object per recording (id, state, file, bytes, user, source, target,
// remote_user, command, start, duration_s, kind; transfers and
// transfer_bytes for sftp and scp sessions; error for an unreadable one).
func WriteJSONLines(w io.Writer, recs []Recording) error {
	enc := json.NewEncoder(w)
	for _, r := range recs {
		v := map[string]any{
			"id": r.ID, "state": r.State, "file": r.Path, "bytes": r.Size,
			"user": r.Header.User, "source": r.Header.Source, "target": r.Header.Target,
			"remote_user": r.Header.RemoteUser, "command": r.Header.Command,
			"start":      time.Unix(r.Header.Timestamp, 0).UTC().Format(time.RFC3339),
			"duration_s": r.Duration.Seconds(), "kind": r.Kind,
		}
		if IsTransferKind(r.Kind) {
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

// WriteTable prints recs for a terminal, as "bastion sessions" does: one
// aligned row per recording; sftp and scp sessions show what they moved
// rather than the size of their log.
func WriteTable(w io.Writer, recs []Recording) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSTART (UTC)\tDURATION\tUSER\tTARGET\tSOURCE\tSIZE\tCOMMAND")
	for _, r := range recs {
		start := "?"
		if r.Header.Timestamp > 0 {
			start = time.Unix(r.Header.Timestamp, 0).UTC().Format("2006-01-02 15:04:05")
		}
		cmd, size := r.Header.Command, humanBytes(r.Size)
		if IsTransferKind(r.Kind) {
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

// humanBytes abbreviates n with one decimal in K, M or G (powers of 1024).
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
