package recorded

import (
	"encoding/binary"
	"path"
	"strconv"
	"strings"
	"sync"
)

// TransferEvent is one file operation seen in an sftp or scp session,
// audited as [EventTransfer].
type TransferEvent struct {
	// Op is "upload", "download", "open" (opened, no data moved), "remove",
	// "rename", "mkdir", "rmdir", "symlink", or "unparsed" when the stream
	// could not be followed any more.
	Op string `json:"op"`
	// Path is the file on the target; Target the second path of rename and
	// symlink.
	Path   string `json:"path,omitempty"`
	Target string `json:"new_path,omitempty"`
	// Bytes is the data moved for uploads and downloads.
	Bytes int64 `json:"bytes,omitempty"`
	// Read and Written split Bytes for a file opened read-write.
	Read    int64 `json:"bytes_read,omitempty"`
	Written int64 `json:"bytes_written,omitempty"`
	// Status is "ok", the server's failure, or "incomplete" when the
	// session ended first.
	Status string `json:"status,omitempty"`
}

// sftp packet types (draft-ietf-secsh-filexfer-02, what OpenSSH speaks).
const (
	sshFxpInit     = 1
	sshFxpOpen     = 3
	sshFxpClose    = 4
	sshFxpRead     = 5
	sshFxpWrite    = 6
	sshFxpRemove   = 13
	sshFxpMkdir    = 14
	sshFxpRmdir    = 15
	sshFxpRename   = 18
	sshFxpSymlink  = 20
	sshFxpStatus   = 101
	sshFxpHandle   = 102
	sshFxpData     = 103
	sshFxpExtended = 200

	sshFxfWrite = 0x02
)

// sftpMaxPacket is the largest packet followed; OpenSSH sends at most 256 KiB.
const sftpMaxPacket = 1 << 24

// sftpPrefix is how much of each packet is kept for parsing: enough for the
// header and two paths; file data is counted, never buffered.
const sftpPrefix = 9000

// sftpMaxTracked bounds the handles and outstanding requests remembered.
const sftpMaxTracked = 4096

var sftpStatus = map[uint32]string{
	0: "ok", 1: "eof", 2: "no such file", 3: "permission denied", 4: "failure",
	5: "bad message", 6: "no connection", 7: "connection lost", 8: "unsupported",
}

type sftpFile struct {
	path          string
	write         bool
	read, written int64
}

// sftpWatcher follows both directions of an sftp session and reports file
// operations. It never changes or delays the bytes.
type sftpWatcher struct {
	mu          sync.Mutex
	emit        func(TransferEvent)
	client      packetStream
	server      packetStream
	pendingOpen map[uint32]*sftpFile
	handles     map[string]*sftpFile
	pendingRead map[uint32]*sftpFile
	pendingOp   map[uint32]TransferEvent
	broken      bool
}

func newSFTPWatcher(emit func(TransferEvent)) *sftpWatcher {
	w := &sftpWatcher{
		emit:        emit,
		pendingOpen: map[uint32]*sftpFile{},
		handles:     map[string]*sftpFile{},
		pendingRead: map[uint32]*sftpFile{},
		pendingOp:   map[uint32]TransferEvent{},
	}
	w.client.handle = w.clientPacket
	w.server.handle = w.serverPacket
	return w
}

// FromClient sees bytes the client sent. It always returns nil.
func (w *sftpWatcher) FromClient(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.feed(&w.client, p)
	return nil
}

// FromServer sees bytes the target sent. It always returns nil.
func (w *sftpWatcher) FromServer(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.feed(&w.server, p)
	return nil
}

func (w *sftpWatcher) feed(ps *packetStream, p []byte) {
	if w.broken {
		return
	}
	if err := ps.feed(p); err != "" {
		w.broken = true
		w.emit(TransferEvent{Op: "unparsed", Status: err})
	}
}

// Close reports files still open when the session ended.
func (w *sftpWatcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for h, f := range w.handles {
		w.emitFile(f, "incomplete")
		delete(w.handles, h)
	}
}

func (w *sftpWatcher) emitFile(f *sftpFile, status string) {
	ev := TransferEvent{Path: f.path, Read: f.read, Written: f.written, Status: status}
	switch {
	case f.written > 0 || f.write:
		ev.Op, ev.Bytes = "upload", f.written
	case f.read > 0:
		ev.Op, ev.Bytes = "download", f.read
	default:
		ev.Op = "open"
	}
	if f.written > 0 && f.read > 0 {
		ev.Bytes = f.read + f.written
	}
	w.emit(ev)
}

func (w *sftpWatcher) clientPacket(pkt []byte, length uint32) {
	r := newReader(pkt)
	typ := r.byte()
	if typ == sshFxpInit {
		return
	}
	id := r.uint32()
	switch typ {
	case sshFxpOpen:
		p := r.string()
		flags := r.uint32()
		if r.ok && len(w.pendingOpen) < sftpMaxTracked {
			w.pendingOpen[id] = &sftpFile{path: p, write: flags&sshFxfWrite != 0}
		}
	case sshFxpClose:
		h := r.string()
		if f, ok := w.handles[h]; ok && r.ok {
			delete(w.handles, h)
			w.emitFile(f, "ok")
		}
	case sshFxpRead:
		h := r.string()
		if f, ok := w.handles[h]; ok && r.ok && len(w.pendingRead) < sftpMaxTracked {
			w.pendingRead[id] = f
		}
	case sshFxpWrite:
		h := r.string()
		r.uint64()
		n := r.uint32()
		if f, ok := w.handles[h]; ok && r.ok {
			f.written += int64(n)
		}
	case sshFxpRemove, sshFxpMkdir, sshFxpRmdir:
		p := r.string()
		op := map[byte]string{sshFxpRemove: "remove", sshFxpMkdir: "mkdir", sshFxpRmdir: "rmdir"}[typ]
		w.addOp(id, r.ok, TransferEvent{Op: op, Path: p})
	case sshFxpRename, sshFxpSymlink:
		a, b := r.string(), r.string()
		op := "rename"
		if typ == sshFxpSymlink {
			op = "symlink"
		}
		w.addOp(id, r.ok, TransferEvent{Op: op, Path: a, Target: b})
	case sshFxpExtended:
		name := r.string()
		if name == "posix-rename@openssh.com" {
			a, b := r.string(), r.string()
			w.addOp(id, r.ok, TransferEvent{Op: "rename", Path: a, Target: b})
		}
	}
}

func (w *sftpWatcher) addOp(id uint32, ok bool, ev TransferEvent) {
	if ok && len(w.pendingOp) < sftpMaxTracked {
		w.pendingOp[id] = ev
	}
}

func (w *sftpWatcher) serverPacket(pkt []byte, length uint32) {
	r := newReader(pkt)
	typ := r.byte()
	id := r.uint32()
	if !r.ok {
		return
	}
	switch typ {
	case sshFxpHandle:
		h := r.string()
		if f, ok := w.pendingOpen[id]; ok {
			delete(w.pendingOpen, id)
			if r.ok && len(w.handles) < sftpMaxTracked {
				w.handles[h] = f
			}
		}
	case sshFxpData:
		n := r.uint32()
		if f, ok := w.pendingRead[id]; ok {
			delete(w.pendingRead, id)
			if r.ok {
				f.read += int64(n)
			}
		}
	case sshFxpStatus:
		code := r.uint32()
		msg := r.string()
		status, known := sftpStatus[code]
		if !known {
			status = "status " + strconv.FormatUint(uint64(code), 10)
		}
		if code != 0 && msg != "" {
			status += ": " + msg
		}
		if f, ok := w.pendingOpen[id]; ok {
			delete(w.pendingOpen, id)
			w.emitFile(f, status)
		}
		delete(w.pendingRead, id)
		if ev, ok := w.pendingOp[id]; ok {
			delete(w.pendingOp, id)
			ev.Status = status
			w.emit(ev)
		}
	}
}

// packetStream splits an SSH-style length-prefixed packet stream fed in
// arbitrary chunks, keeping at most sftpPrefix bytes of each packet.
type packetStream struct {
	hdr       [4]byte
	hdrN      int
	length    uint32
	remaining uint32
	prefix    []byte
	handle    func(prefix []byte, length uint32)
}

// feed returns a non-empty reason when the stream cannot be followed.
func (ps *packetStream) feed(p []byte) string {
	for len(p) > 0 {
		if ps.hdrN < 4 {
			n := copy(ps.hdr[ps.hdrN:], p)
			ps.hdrN += n
			p = p[n:]
			if ps.hdrN < 4 {
				return ""
			}
			ps.length = binary.BigEndian.Uint32(ps.hdr[:])
			if ps.length == 0 || ps.length > sftpMaxPacket {
				return "sftp packet length " + strconv.FormatUint(uint64(ps.length), 10) + " out of range"
			}
			ps.remaining = ps.length
			ps.prefix = ps.prefix[:0]
		}
		n := min(uint32(len(p)), ps.remaining)
		if room := sftpPrefix - len(ps.prefix); room > 0 {
			ps.prefix = append(ps.prefix, p[:min(int(n), room)]...)
		}
		ps.remaining -= n
		p = p[n:]
		if ps.remaining == 0 {
			ps.handle(ps.prefix, ps.length)
			ps.hdrN = 0
		}
	}
	return ""
}

// sshReader decodes SSH wire types; once a read runs short, ok turns
// false and every later read returns zero values.
type sshReader struct {
	b  []byte
	i  int
	ok bool
}

func newReader(b []byte) sshReader { return sshReader{b: b, ok: true} }

func (r *sshReader) take(n int) []byte {
	if !r.ok || n < 0 || len(r.b)-r.i < n {
		r.ok = false
		return nil
	}
	r.i += n
	return r.b[r.i-n : r.i]
}

func (r *sshReader) byte() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *sshReader) uint32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *sshReader) uint64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *sshReader) string() string {
	n := r.uint32()
	if n > uint32(len(r.b)) {
		r.ok = false
		return ""
	}
	return string(r.take(int(n)))
}

// scpWatcher follows the sending side of a legacy scp session ("scp -t"
// receives on the target: the client sends; "scp -f" sends from the target)
// and reports each file with its size.
type scpWatcher struct {
	mu      sync.Mutex
	emit    func(TransferEvent)
	upload  bool
	dest    string
	dirs    []string
	line    []byte
	skip    int64 // file bytes still to pass, then one status byte
	file    TransferEvent
	moved   int64
	inFile  bool
	broken  bool
	recurse bool
}

func newSCPWatcher(argv []string, emit func(TransferEvent)) *scpWatcher {
	w := &scpWatcher{emit: emit}
	for i, a := range argv[1:] {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && a != "-" {
			if strings.Contains(a, "t") {
				w.upload = true
			}
			if strings.ContainsAny(a, "rd") {
				w.recurse = true
			}
			continue
		}
		w.dest = strings.Join(argv[1+i:], " ")
		break
	}
	op := "download"
	if w.upload {
		op = "upload"
	}
	w.file.Op = op
	return w
}

// FromClient sees what the client sent.
func (w *scpWatcher) FromClient(p []byte) error {
	if w.upload {
		w.feed(p)
	}
	return nil
}

// FromServer sees what the target sent.
func (w *scpWatcher) FromServer(p []byte) error {
	if !w.upload {
		w.feed(p)
	}
	return nil
}

func (w *scpWatcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFile {
		ev := w.file
		ev.Bytes = w.moved
		ev.Status = "incomplete"
		w.emit(ev)
		w.inFile = false
	}
}

func (w *scpWatcher) feed(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(p) > 0 && !w.broken {
		if w.inFile {
			if w.skip > 0 {
				n := min(int64(len(p)), w.skip)
				w.skip -= n
				w.moved += n
				p = p[n:]
				continue
			}
			// The status byte after the data.
			p = p[1:]
			ev := w.file
			ev.Bytes = w.moved
			ev.Status = "ok"
			w.emit(ev)
			w.inFile = false
			continue
		}
		i := 0
		for i < len(p) && p[i] != '\n' {
			i++
		}
		if len(w.line)+i > 4096 {
			w.broken = true
			w.emit(TransferEvent{Op: "unparsed", Path: w.dest, Status: "scp control line too long"})
			return
		}
		w.line = append(w.line, p[:i]...)
		if i == len(p) {
			return
		}
		p = p[i+1:]
		w.control(string(w.line))
		w.line = w.line[:0]
	}
}

func (w *scpWatcher) control(line string) {
	if line == "" {
		return
	}
	switch line[0] {
	case 'C', 'D':
		f := strings.SplitN(line[1:], " ", 3)
		if len(f) != 3 {
			w.broken = true
			w.emit(TransferEvent{Op: "unparsed", Path: w.dest, Status: "scp control line malformed"})
			return
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			w.broken = true
			w.emit(TransferEvent{Op: "unparsed", Path: w.dest, Status: "scp file size malformed"})
			return
		}
		if line[0] == 'D' {
			w.dirs = append(w.dirs, f[2])
			return
		}
		p := w.dest
		if w.recurse || !w.upload {
			p = path.Join(append(append([]string{w.dest}, w.dirs...), f[2])...)
			if !w.upload {
				// The target sends files named after its own paths.
				p = path.Join(append([]string{w.dest}, w.dirs...)...)
				if len(w.dirs) > 0 || w.recurse {
					p = path.Join(p, f[2])
				}
			}
		}
		w.file.Path = p
		w.skip = size
		w.moved = 0
		w.inFile = true
	case 'E':
		if len(w.dirs) > 0 {
			w.dirs = w.dirs[:len(w.dirs)-1]
		}
	}
	// 'T' (times), 1 and 2 (warnings, errors) carry nothing to audit.
}
