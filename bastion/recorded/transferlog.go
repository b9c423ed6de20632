package recorded

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

// An sftp or scp session is not screen-recorded, but it still leaves a file
// in the recordings directory, ID.transfers.cast, so that it shows up in
// [List], is followed by [Follow], and ages out with the recordings. The
// file is asciicast v2 written by the same [asciicast.Writer] (same
// buffering, flushing and crash safety), with Header.Kind "sftp" or "scp"
// and one marker event per file operation whose label is the
// [TransferEvent] as JSON. A session that ends cleanly closes the log with
// the marker [transferEndMark]. asciinema plays the file as an empty
// screen with one chapter per transfer.

const (
	castSuffix      = ".cast"
	transfersSuffix = ".transfers.cast"
	transferEndMark = "end"
)

// TransfersPath returns the transfer log of sftp or scp session id in dir.
func TransfersPath(dir, id string) string { return filepath.Join(dir, id+transfersSuffix) }

// IsTransferKind reports whether a session of kind (Header.Kind) is an
// sftp or scp session, whose file is a transfer log, not a screen recording.
func IsTransferKind(kind string) bool { return kind == string(kindSFTP) || kind == string(kindSCP) }

// parseFileName splits a file name in the recordings directory into the
// session id and whether it is a transfer log; ok is false for anything
// else.
func parseFileName(name string) (id string, transfers, ok bool) {
	if id, ok := strings.CutSuffix(name, transfersSuffix); ok {
		return id, true, ValidID(id)
	}
	id, ok = strings.CutSuffix(name, castSuffix)
	return id, false, ok && ValidID(id)
}

// Transfer is one file operation read back from a transfer log.
type Transfer struct {
	// Time is the offset from the start of the session.
	Time time.Duration
	TransferEvent
}

// parseTransfer decodes a transfer from a marker event; ok is false for
// any other event, including the end marker.
func parseTransfer(ev asciicast.Event) (Transfer, bool) {
	if ev.Code != asciicast.Marker || !strings.HasPrefix(ev.Data, "{") {
		return Transfer{}, false
	}
	var t Transfer
	if err := json.Unmarshal([]byte(ev.Data), &t.TransferEvent); err != nil || t.Op == "" {
		return Transfer{}, false
	}
	t.Time = ev.Time
	return t, true
}

func transferLabel(ev TransferEvent) string {
	b, _ := json.Marshal(ev) // strings and integers only: cannot fail
	return string(b)
}

// String formats the transfer as one line of `bastion watch` and `bastion
// replay`: offset, operation, path(s), bytes, status.
func (t Transfer) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%9s  %-8s %s", "+"+t.Time.Round(time.Millisecond).String(), t.Op, strconv.Quote(t.Path))
	if t.Target != "" {
		b.WriteString(" -> " + strconv.Quote(t.Target))
	}
	if t.Op == "upload" || t.Op == "download" || t.Bytes > 0 {
		b.WriteString("  " + strconv.FormatInt(t.Bytes, 10) + " bytes")
	}
	if t.Status != "" {
		b.WriteString("  " + t.Status)
	}
	return b.String()
}

// WriteTransfers writes every transfer in the log rd to w, one [Transfer]
// line each, and returns how many it wrote. A torn last line (an
// interrupted session) ends the list without error.
func WriteTransfers(w io.Writer, rd *asciicast.Reader) (int, error) {
	n := 0
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, asciicast.ErrTornLine) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if t, ok := parseTransfer(ev); ok {
			if _, err := fmt.Fprintln(w, t); err != nil {
				return n, err
			}
			n++
		}
	}
}

// transferSummary is what [List] shows of a transfer log.
type transferSummary struct {
	duration time.Duration
	count    int64
	bytes    int64
}

// summarizeTransfers reads a whole transfer log: it holds one line per
// file operation, not terminal output, so it stays small next to a
// screen recording of the same session.
func summarizeTransfers(rd *asciicast.Reader) (transferSummary, error) {
	var s transferSummary
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, asciicast.ErrTornLine) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		s.duration = ev.Time
		if t, ok := parseTransfer(ev); ok {
			s.count++
			s.bytes += t.Bytes
		}
	}
}
