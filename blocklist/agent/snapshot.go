package agent

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"

	"github.com/rampart-sec/rampart/blocklist/internal/wire"
	"github.com/rampart-sec/rampart/pkg/atomicfile"
)

// SnapshotFile is the name of the persisted snapshot in the state directory.
const SnapshotFile = "snapshot.rbl"

// Snapshot is the server set the agent last enforced, at Version.
type Snapshot struct {
	Version uint64
	Entries []netip.Prefix
}

// ErrNoSnapshot is returned by [LoadSnapshot] when none was ever saved.
var ErrNoSnapshot = errors.New("no snapshot saved yet")

// SaveSnapshot writes s to path atomically (mode 0600), in blocklistd's
// own wire format: compact, and its gzip checksum catches a damaged file.
func SaveSnapshot(path string, s Snapshot) error {
	err := atomicfile.Write(path, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1}, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := wire.Encode(bw, wire.Update{Version: s.Version, Full: true, Entries: s.Entries}, gzip.BestSpeed); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", path, err)
	}
	return nil
}

// LoadSnapshot reads a snapshot written by [SaveSnapshot]; maxEntries
// bounds what it accepts (0: the wire default).
func LoadSnapshot(path string, maxEntries int) (Snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("load snapshot: %w", err)
	}
	defer f.Close()
	u, err := wire.Decode(bufio.NewReaderSize(f, 256<<10), maxEntries)
	if err != nil {
		return Snapshot{}, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	if !u.Full {
		return Snapshot{}, fmt.Errorf("load snapshot %s: holds a delta, not a snapshot", path)
	}
	return Snapshot{Version: u.Version, Entries: u.Entries}, nil
}
