package acme

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"

	legolog "github.com/go-acme/lego/v4/log"
)

// lego logs through one package-level logger (lego/v4/log.Logger), not
// through anything a caller passes in; SetLegoLogger is the one place
// Rampart replaces it.
var legoMu sync.Mutex

// SetLegoLogger routes lego's log lines into l for the whole process and
// returns a function that restores lego's previous logger. A line
// "[WARN] [www.example.org] acme: ..." becomes a record at level Warn
// with the message "acme: ..." and the attributes component=lego and
// domain=www.example.org; "[INFO]" lines are at Info. lego's Fatal calls
// log at Error, then exit as the standard logger would.
func SetLegoLogger(l *slog.Logger) (restore func()) {
	legoMu.Lock()
	defer legoMu.Unlock()
	prev := legolog.Logger
	legolog.Logger = slogLego{l.With("component", "lego")}
	return func() {
		legoMu.Lock()
		defer legoMu.Unlock()
		legolog.Logger = prev
	}
}

type slogLego struct{ l *slog.Logger }

var legoLineRE = regexp.MustCompile(`^\[(INFO|WARN|WARNING|ERROR|DEBUG)\] (?:\[([^\]]+)\] )?`)

func (s slogLego) emit(level slog.Level, msg string) {
	msg = strings.TrimRight(msg, "\n")
	var attrs []any
	if m := legoLineRE.FindStringSubmatch(msg); m != nil {
		switch m[1] {
		case "WARN", "WARNING":
			level = max(level, slog.LevelWarn)
		case "ERROR":
			level = slog.LevelError
		case "DEBUG":
			level = slog.LevelDebug
		}
		if m[2] != "" {
			attrs = append(attrs, "domain", m[2])
		}
		msg = msg[len(m[0]):]
	}
	s.l.Log(context.Background(), level, msg, attrs...)
}

func (s slogLego) Print(args ...any)   { s.emit(slog.LevelInfo, fmt.Sprint(args...)) }
func (s slogLego) Println(args ...any) { s.emit(slog.LevelInfo, fmt.Sprintln(args...)) }
func (s slogLego) Printf(format string, args ...any) {
	s.emit(slog.LevelInfo, fmt.Sprintf(format, args...))
}

func (s slogLego) Fatal(args ...any) {
	s.emit(slog.LevelError, fmt.Sprint(args...))
	os.Exit(1)
}

func (s slogLego) Fatalln(args ...any) {
	s.emit(slog.LevelError, fmt.Sprintln(args...))
	os.Exit(1)
}

func (s slogLego) Fatalf(format string, args ...any) {
	s.emit(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}
