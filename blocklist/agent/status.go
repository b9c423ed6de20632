package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// Names of the status file and socket in the state directory.
const (
	StatusFile = "status.json"
	SocketFile = "agent.sock"
)

// Status is what the agent knows about itself, as `blocklist-agent status`
// shows it. Times are zero when the event never happened.
type Status struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Server  string    `json:"server,omitempty"`
	// Backend is the firewall enforcing the set (nftables, pf) and Table
	// the table it holds it in.
	Backend string `json:"backend,omitempty"`
	Table   string `json:"table,omitempty"`

	// Version is the blocklistd version enforced; 0 means none yet.
	Version uint64 `json:"version"`
	// Entries counts the server's entries at Version, by family.
	Entries int `json:"entries"`
	IPv4    int `json:"ipv4"`
	IPv6    int `json:"ipv6"`
	// Refused and Allowlisted count entries the policy refused as too
	// broad or trimmed because they overlap the allowlist.
	Refused     int `json:"refused"`
	Allowlisted int `json:"allowlisted"`
	// Restored is set when the enforced set came from the snapshot on
	// disk and blocklistd has not answered since the agent started.
	Restored bool `json:"restored"`

	// LastSync is the last time blocklistd answered; LastChange the last
	// time the enforced set changed.
	LastSync   time.Time `json:"last_sync"`
	LastChange time.Time `json:"last_change"`
	// Reachable says whether the last attempt to reach blocklistd worked.
	Reachable bool      `json:"reachable"`
	Failures  int       `json:"failures"` // consecutive
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"error_at"`
}

// WriteStatus writes s to dir/status.json atomically.
func WriteStatus(dir string, s Status) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, StatusFile), append(data, '\n'), atomicfile.Options{Mode: 0o644, UID: -1, GID: -1})
}

// ErrNoStatus means the agent never ran with this state directory.
var ErrNoStatus = errors.New("no agent status: the agent never ran with this state directory")

// QueryStatus returns the agent's status: live from its socket when it
// runs (running true), else the last status file it wrote.
func QueryStatus(ctx context.Context, dir string) (s Status, running bool, err error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, SocketFile)); err == nil {
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&s); err != nil {
			return Status{}, true, fmt.Errorf("read agent status from %s: %w", filepath.Join(dir, SocketFile), err)
		}
		return s, true, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, false, ErrNoStatus
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("read agent status: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, false, fmt.Errorf("read agent status %s: %w", filepath.Join(dir, StatusFile), err)
	}
	return s, false, nil
}

// serveStatus answers every connection on dir/agent.sock with the current
// status until ctx ends.
func serveStatus(ctx context.Context, dir string, logger *slog.Logger, current func() Status) error {
	path := filepath.Join(dir, SocketFile)
	// A stale socket from a crashed agent would make Listen fail; a live
	// agent on the same directory would answer the dial.
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return fmt.Errorf("status socket %s: another agent is running with this state directory", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("status socket: %w", err)
	}
	// Only root (and the agent's own user) may read it: the status names
	// the server and the error messages.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("status socket: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("status socket stopped", "err", err)
				}
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				json.NewEncoder(conn).Encode(current())
			}()
		}
	}()
	return nil
}
