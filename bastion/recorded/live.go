package recorded

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// createLive creates the marker of a live session and holds an exclusive
// flock on it for as long as the session is recorded. If the process dies
// the kernel drops the lock, so a reader can tell a crashed session from a
// live one.
func createLive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create live marker: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("lock live marker %s: %w", path, err)
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write live marker %s: %w", path, err)
	}
	return f, nil
}

func removeLive(f *os.File) {
	if f == nil {
		return
	}
	os.Remove(f.Name())
	f.Close()
}

// liveState says whether the marker at path is held by a running recorder.
type liveState int

const (
	noMarker liveState = iota
	markerHeld
	markerStale // the recorder died
)

func probeLive(path string) liveState {
	f, err := os.Open(path)
	if err != nil {
		return noMarker
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return markerHeld
	}
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	return markerStale
}
