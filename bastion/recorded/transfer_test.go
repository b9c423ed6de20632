package recorded

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// pkt builds an sftp packet: type, then fields (uint32, uint64, string or
// []byte as an SSH string).
func pkt(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case int:
			body = binary.BigEndian.AppendUint32(body, uint32(v))
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case []byte:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

type dirPkt struct {
	fromClient bool
	b          []byte
}

func c(b []byte) dirPkt { return dirPkt{true, b} }
func s(b []byte) dirPkt { return dirPkt{false, b} }

func TestSFTPWatcher(t *testing.T) {
	attrs := uint32(0)
	data := make([]byte, 40000)
	tests := []struct {
		name string
		pkts []dirPkt
		want []TransferEvent
	}{
		{"upload", []dirPkt{
			c(pkt(sshFxpInit, 3)), s(pkt(2, 3)),
			c(pkt(sshFxpOpen, 1, "/srv/up.bin", sshFxfWrite|0x08|0x10, attrs)), s(pkt(sshFxpHandle, 1, "h1")),
			c(pkt(sshFxpWrite, 2, "h1", uint64(0), data)), c(pkt(sshFxpWrite, 3, "h1", uint64(40000), data[:123])),
			s(pkt(sshFxpStatus, 2, 0, "", "")), s(pkt(sshFxpStatus, 3, 0, "", "")),
			c(pkt(sshFxpClose, 4, "h1")), s(pkt(sshFxpStatus, 4, 0, "", "")),
		}, []TransferEvent{{Op: "upload", Path: "/srv/up.bin", Bytes: 40123, Written: 40123, Status: "ok"}}},
		{"download", []dirPkt{
			c(pkt(sshFxpOpen, 1, "/etc/motd", 1, attrs)), s(pkt(sshFxpHandle, 1, "h")),
			c(pkt(sshFxpRead, 2, "h", uint64(0), 32768)), s(pkt(sshFxpData, 2, data[:500])),
			c(pkt(sshFxpRead, 3, "h", uint64(500), 32768)), s(pkt(sshFxpStatus, 3, 1, "EOF", "")),
			c(pkt(sshFxpClose, 4, "h")),
		}, []TransferEvent{{Op: "download", Path: "/etc/motd", Bytes: 500, Read: 500, Status: "ok"}}},
		{"open refused", []dirPkt{
			c(pkt(sshFxpOpen, 7, "/root/x", sshFxfWrite, attrs)), s(pkt(sshFxpStatus, 7, 3, "Permission denied", "")),
		}, []TransferEvent{{Op: "upload", Path: "/root/x", Status: "permission denied: Permission denied"}}},
		{"rename, posix-rename, remove, mkdir, rmdir, symlink", []dirPkt{
			c(pkt(sshFxpRename, 1, "/a", "/b")), s(pkt(sshFxpStatus, 1, 0, "", "")),
			c(pkt(sshFxpExtended, 2, "posix-rename@openssh.com", "/b", "/c")), s(pkt(sshFxpStatus, 2, 0, "", "")),
			c(pkt(sshFxpRemove, 3, "/c")), s(pkt(sshFxpStatus, 3, 2, "No such file", "")),
			c(pkt(sshFxpMkdir, 4, "/d", attrs)), s(pkt(sshFxpStatus, 4, 0, "", "")),
			c(pkt(sshFxpRmdir, 5, "/d")), s(pkt(sshFxpStatus, 5, 0, "", "")),
			c(pkt(sshFxpSymlink, 6, "/l", "/t")), s(pkt(sshFxpStatus, 6, 0, "", "")),
		}, []TransferEvent{
			{Op: "rename", Path: "/a", Target: "/b", Status: "ok"},
			{Op: "rename", Path: "/b", Target: "/c", Status: "ok"},
			{Op: "remove", Path: "/c", Status: "no such file: No such file"},
			{Op: "mkdir", Path: "/d", Status: "ok"},
			{Op: "rmdir", Path: "/d", Status: "ok"},
			{Op: "symlink", Path: "/l", Target: "/t", Status: "ok"},
		}},
		{"session ends with the file open", []dirPkt{
			c(pkt(sshFxpOpen, 1, "/big", sshFxfWrite, attrs)), s(pkt(sshFxpHandle, 1, "h")),
			c(pkt(sshFxpWrite, 2, "h", uint64(0), data[:10])),
		}, []TransferEvent{{Op: "upload", Path: "/big", Bytes: 10, Written: 10, Status: "incomplete"}}},
		{"absurd length", []dirPkt{c([]byte{0xff, 0xff, 0xff, 0xff, 1})},
			[]TransferEvent{{Op: "unparsed", Status: "sftp packet length 4294967295 out of range"}}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 1 << 20} {
			var got []TransferEvent
			w := newSFTPWatcher(func(ev TransferEvent) { got = append(got, ev) })
			for _, p := range tt.pkts {
				for i := 0; i < len(p.b); i += chunk {
					part := p.b[i:min(i+chunk, len(p.b))]
					if p.fromClient {
						w.FromClient(part)
					} else {
						w.FromServer(part)
					}
				}
			}
			w.Close()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s (chunks of %d):\ngot  %+v\nwant %+v", tt.name, chunk, got, tt.want)
			}
		}
	}
}

func TestSCPWatcher(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		fromClient bool
		stream     string
		want       []TransferEvent
	}{
		{"upload one file", []string{"scp", "-t", "/srv/in.txt"}, true, "C0644 5 local.txt\nhello\x00",
			[]TransferEvent{{Op: "upload", Path: "/srv/in.txt", Bytes: 5, Status: "ok"}}},
		{"upload recursive", []string{"scp", "-r", "-t", "/srv"}, true, "D0755 0 dir\nT1 0 1 0\nC0644 3 a\nabc\x00C0644 0 b\n\x00E\nC0600 2 c\nxy\x00",
			[]TransferEvent{
				{Op: "upload", Path: "/srv/dir/a", Bytes: 3, Status: "ok"},
				{Op: "upload", Path: "/srv/dir/b", Bytes: 0, Status: "ok"},
				{Op: "upload", Path: "/srv/c", Bytes: 2, Status: "ok"},
			}},
		{"download", []string{"scp", "-f", "/etc/hostname"}, false, "C0644 4 hostname\nvm1\n\x00",
			[]TransferEvent{{Op: "download", Path: "/etc/hostname", Bytes: 4, Status: "ok"}}},
		{"cut short", []string{"scp", "-t", "/srv/x"}, true, "C0644 100 x\nabc",
			[]TransferEvent{{Op: "upload", Path: "/srv/x", Bytes: 3, Status: "incomplete"}}},
		{"malformed", []string{"scp", "-t", "/srv/x"}, true, "C0644 -1 x\n",
			[]TransferEvent{{Op: "unparsed", Path: "/srv/x", Status: "scp file size malformed"}}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 1 << 20} {
			var got []TransferEvent
			w := newSCPWatcher(tt.argv, func(ev TransferEvent) { got = append(got, ev) })
			b := []byte(tt.stream)
			for i := 0; i < len(b); i += chunk {
				part := b[i:min(i+chunk, len(b))]
				if tt.fromClient {
					w.FromClient(part)
					w.FromServer([]byte{0}) // acks are ignored
				} else {
					w.FromServer(part)
					w.FromClient([]byte{0})
				}
			}
			w.Close()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s (chunks of %d):\ngot  %+v\nwant %+v", tt.name, chunk, got, tt.want)
			}
		}
	}
}

func TestIsSCP(t *testing.T) {
	for argv, want := range map[string]bool{
		"scp -t /x": true, "scp -f /x": true, "/usr/bin/scp -r -t /x": true, "scp -pt /x": true,
		"scp": false, "ls -t": false, "scp --help": false, "echo scp -t": false,
	} {
		if got := isSCP(strings.Fields(argv)); got != want {
			t.Errorf("isSCP(%q) = %v", argv, got)
		}
	}
}

// Arbitrary bytes in both directions never panic and never grow the
// watcher's memory past its bounds.
func FuzzSFTPWatcher(f *testing.F) {
	f.Add(pkt(sshFxpOpen, 1, "/a", sshFxfWrite, 0), pkt(sshFxpHandle, 1, "h"), uint8(3))
	f.Add(pkt(sshFxpWrite, 2, "h", uint64(0), "data"), pkt(sshFxpStatus, 2, 0, "", ""), uint8(1))
	f.Add(pkt(sshFxpExtended, 2, "posix-rename@openssh.com", "/b"), pkt(sshFxpData, 2, "x"), uint8(200))
	f.Fuzz(func(t *testing.T, client, server []byte, chunk uint8) {
		size := int(chunk) + 1
		w := newSFTPWatcher(func(TransferEvent) {})
		for i := 0; i < max(len(client), len(server)); i += size {
			if i < len(client) {
				w.FromClient(client[i:min(i+size, len(client))])
			}
			if i < len(server) {
				w.FromServer(server[i:min(i+size, len(server))])
			}
		}
		w.Close()
		if len(w.client.prefix) > sftpPrefix || len(w.server.prefix) > sftpPrefix || len(w.handles) > sftpMaxTracked {
			t.Fatal("watcher exceeded its bounds")
		}
	})
}

func FuzzSCPWatcher(f *testing.F) {
	f.Add("-t", []byte("C0644 5 local.txt\nhello\x00"))
	f.Add("-rf", []byte("D0755 0 d\nC0644 1 a\nx\x00E\n"))
	f.Fuzz(func(t *testing.T, flags string, stream []byte) {
		w := newSCPWatcher([]string{"scp", flags, "/dest"}, func(ev TransferEvent) {
			if ev.Bytes < 0 {
				t.Fatalf("negative size %+v", ev)
			}
		})
		w.FromClient(stream)
		w.FromServer(stream)
		w.Close()
		if len(w.line) > 4096 {
			t.Fatal("control line buffer unbounded")
		}
	})
}
