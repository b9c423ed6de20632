package recorded_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/recorded"
	"github.com/rampart-sec/rampart/bastion/recorded/asciicast"
)

// A bastion hands each session for a recorded target to Proxy.Serve; the
// sftp subsystem goes the same way so transfers are audited.
func ExampleProxy_Serve() {
	_, caKey, _ := ed25519.GenerateKey(rand.Reader) // in production: the internal CA's SSH user key
	userCA, _ := gossh.NewSignerFromKey(caKey)
	dir, _ := os.MkdirTemp("", "recordings")
	defer os.RemoveAll(dir)

	proxy, err := recorded.New(recorded.Options{
		Dir:       dir,
		UserCA:    userCA,
		CertTTL:   2 * time.Minute,
		Retention: recorded.Retention{MaxBytes: 10 << 30, MaxAge: 90 * 24 * time.Hour},
		Logger:    slog.Default(),
		Audit: func(event string, fields map[string]any) {
			fmt.Println(event, fields["session"])
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	target := recorded.Target{Name: "db1", Addr: "db1.internal:22" /* HostCA: the host CA's public key */}
	handler := func(s glssh.Session) {
		// After public key and second factor succeeded:
		proxy.Serve(s, s.User(), target)
	}
	srv := &glssh.Server{
		Addr:              ":2222",
		Handler:           handler,
		SubsystemHandlers: map[string]glssh.SubsystemHandler{"sftp": handler},
	}
	_ = srv // srv.ListenAndServe()
	fmt.Println("ready")
	// Output: ready
}

// List is what `bastion sessions` prints; Prune is what retention runs.
func ExampleList() {
	dir, _ := os.MkdirTemp("", "recordings")
	defer os.RemoveAll(dir)
	f, _ := os.Create(recorded.CastPath(dir, "20270101T090000Z-0000beef"))
	w, _ := asciicast.NewWriter(f, asciicast.Header{Width: 80, Height: 24, User: "alice", Target: "db1"}, asciicast.WriterOptions{FlushInterval: -1})
	w.Output([]byte("$ uptime\r\n"))
	w.Close()
	f.Close()

	recs, err := recorded.List(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Println(r.ID, r.State, r.Header.User, r.Header.Target)
	}
	pruned, _ := recorded.Prune(dir, recorded.Retention{MaxBytes: 1}, time.Now())
	fmt.Println(len(pruned), "pruned")
	// Output:
	// 20270101T090000Z-0000beef ended alice db1
	// 1 pruned
}

// An sftp or scp session leaves a transfer log: asciicast v2 whose markers
// are the file operations. WriteTransfers is what `bastion replay` prints
// for it.
func ExampleWriteTransfers() {
	var log bytes.Buffer
	w, _ := asciicast.NewWriter(&log, asciicast.Header{Width: 80, Height: 24, User: "alice", Target: "db1", Kind: "sftp"},
		asciicast.WriterOptions{FlushInterval: -1, Now: func() time.Time { return time.Unix(0, 0) }})
	w.Mark(`{"op":"upload","path":"/srv/report.csv","bytes":1024,"bytes_written":1024,"status":"ok"}`)
	w.Mark(`{"op":"remove","path":"/srv/old.csv","status":"no such file"}`)
	w.Mark("end")
	w.Close()

	rd, _ := asciicast.NewReader(&log)
	if recorded.IsTransferKind(rd.Header.Kind) {
		n, _ := recorded.WriteTransfers(os.Stdout, rd)
		fmt.Println(n, "transfers")
	}
	// Output:
	//       +0s  upload   "/srv/report.csv"  1024 bytes  ok
	//       +0s  remove   "/srv/old.csv"  no such file
	// 2 transfers
}
