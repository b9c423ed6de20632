package acme

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-sec/rampart/pkg/atomicfile"
	"github.com/rampart-sec/rampart/pkg/pemcert"
)

// Names of the files in every version directory.
const (
	FileKey       = "privkey.pem"
	FileCert      = "cert.pem"      // the leaf alone
	FileChain     = "chain.pem"     // the intermediates alone
	FileFullChain = "fullchain.pem" // leaf then intermediates
	FileCombined  = "combined.pem"  // key then full chain (HAProxy)
	currentLink   = "current"
	versionPrefix = "v-"
)

// Pair is what a renewal produced: the private key and the chain.
type Pair struct {
	KeyPEM   []byte
	CertPEM  []byte // leaf
	ChainPEM []byte // intermediates
}

// store writes and reads one certificate's output directory:
//
//	DIR/current -> v-20261122T041500Z-1a2b3c4d   (one symlink, swapped atomically)
//	DIR/v-.../privkey.pem cert.pem chain.pem fullchain.pem combined.pem
//
// Each version directory is complete and fsynced before the symlink moves,
// and rename(2) of the symlink is atomic, so a reader going through
// DIR/current (directly or through the configured link paths) sees the old
// set or the new set, even if the process is killed at any point.
type store struct {
	out Output
	// step is called after every filesystem operation of install; tests use
	// it to kill the process at each point.
	step func(string)
}

func (s *store) mark(what string) {
	if s.step != nil {
		s.step(what)
	}
}

// CurrentDir is where the live files are read from.
func (o *Output) CurrentDir() string { return filepath.Join(o.Dir, currentLink) }

// readCurrent parses the live leaf and chain; (nil, nil) if there is none.
func readCurrent(o *Output) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(o.CurrentDir(), FileFullChain))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	certs, err := pemcert.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(o.CurrentDir(), FileFullChain), err)
	}
	return certs, nil
}

// install publishes p as the new current version and returns its directory.
func (s *store) install(p Pair, now time.Time) (string, error) {
	o := &s.out
	perm, err := atomicfile.Owner(o.keyMode, o.Owner, o.Group)
	if err != nil {
		return "", fmt.Errorf("output %s: %w", o.Dir, err)
	}
	pub := perm
	pub.Mode = o.certMode
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := versionPrefix + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	vdir := filepath.Join(o.Dir, name)
	if err := os.Mkdir(vdir, 0o755); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	s.mark("mkdir")
	full := append(append([]byte{}, p.CertPEM...), p.ChainPEM...)
	files := []struct {
		name string
		data []byte
		opts atomicfile.Options
	}{
		{FileKey, p.KeyPEM, perm},
		{FileCombined, append(append([]byte{}, p.KeyPEM...), full...), perm},
		{FileCert, p.CertPEM, pub},
		{FileChain, p.ChainPEM, pub},
		{FileFullChain, full, pub},
	}
	for _, f := range files {
		if err := atomicfile.WriteFile(filepath.Join(vdir, f.name), f.data, f.opts); err != nil {
			os.RemoveAll(vdir)
			return "", fmt.Errorf("output: %w", err)
		}
		s.mark("write " + f.name)
	}
	prev, _ := os.Readlink(o.CurrentDir())
	if err := swapSymlink(name, o.CurrentDir()); err != nil {
		os.RemoveAll(vdir)
		return "", fmt.Errorf("output: %w", err)
	}
	s.mark("swap")
	links := []struct{ path, file string }{
		{o.Key, FileKey}, {o.Cert, FileCert}, {o.Chain, FileChain},
		{o.FullChain, FileFullChain}, {o.Combined, FileCombined},
	}
	for _, l := range links {
		if l.path == "" {
			continue
		}
		if err := ensureLink(filepath.Join(o.CurrentDir(), l.file), l.path); err != nil {
			return vdir, fmt.Errorf("output: link %s: %w", l.path, err)
		}
		s.mark("link " + l.file)
	}
	pruneVersions(o.Dir, name, prev)
	s.mark("prune")
	return vdir, nil
}

// swapSymlink points link at target by renaming a fresh symlink over it.
func swapSymlink(target, link string) error {
	tmp := fmt.Sprintf("%s.tmp-%d", link, time.Now().UnixNano())
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(link))
}

// ensureLink makes path a symlink to target unless it already is one.
// A regular file there (say, left by another ACME client) is replaced.
func ensureLink(target, path string) error {
	if t, err := os.Readlink(path); err == nil && t == target {
		return nil
	}
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return swapSymlink(target, path)
}

// pruneVersions keeps the current version and the one before it (for a
// manual rollback) and removes the rest, including leftovers of killed runs.
func pruneVersions(dir string, keep ...string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, currentLink+".tmp-"):
			os.Remove(filepath.Join(dir, n))
		case e.IsDir() && strings.HasPrefix(n, versionPrefix) && !slices.Contains(keep, n):
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}
