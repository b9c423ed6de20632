// Package atomicfile writes files so that a reader, or a crash, sees either the
// old content or the new content, never a mix or nothing.
//
// The content goes to a temporary file in the same directory, is synced, gets
// its owner, group and mode, and is then renamed over the destination; the
// directory is synced last so that the rename itself survives a power loss.
// Keys and certificates written this way never exist, even for an instant,
// with a looser mode than asked for.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// Options says who owns the written file and with what mode.
// The zero value writes mode 0600, owned by the calling process.
type Options struct {
	// Mode is the file's permission bits; 0 means 0600.
	Mode fs.FileMode
	// UID and GID change the owner when not -1. Zero is root, so callers
	// that do not care must say -1 (or use [Owner] with empty names).
	UID, GID int
}

// Owner returns Options with the given mode and the uid and gid of the named
// user and group; an empty name leaves that part unchanged.
func Owner(mode fs.FileMode, userName, groupName string) (Options, error) {
	o := Options{Mode: mode, UID: -1, GID: -1}
	if userName != "" {
		id, err := lookupID(userName, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return o, fmt.Errorf("owner %q: %w", userName, err)
		}
		o.UID = id
	}
	if groupName != "" {
		id, err := lookupID(groupName, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return o, fmt.Errorf("group %q: %w", groupName, err)
		}
		o.GID = id
	}
	return o, nil
}

func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	s, err := lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, opts Options) error {
	return Write(path, opts, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// Write atomically replaces path with what fill writes. If fill fails, the
// destination is untouched and the temporary file removed.
func Write(path string, opts Options, fill func(w io.Writer) error) (err error) {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o600
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600, so the content is never readable by
	// others before the final mode is applied.
	if err = fill(f); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", tmp, err)
	}
	// Mode first: once the file belongs to another user, chmod would need
	// CAP_FOWNER, which the shipped units do not grant (only CAP_CHOWN).
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("atomicfile: chmod %s: %w", path, err)
	}
	if opts.UID != -1 || opts.GID != -1 {
		if err = f.Chown(opts.UID, opts.GID); err != nil {
			return fmt.Errorf("atomicfile: chown %s: %w", path, err)
		}
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync dir %s: %w", dir, err)
	}
	return nil
}
