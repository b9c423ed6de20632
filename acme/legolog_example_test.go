package acme_test

import (
	"log/slog"
	"os"

	legolog "github.com/go-acme/lego/v4/log"

	"github.com/rampart-sec/rampart/acme"
)

// lego's own log lines join the caller's structured log, with their level
// and the domain they are about as attributes.
func ExampleSetLegoLogger() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output for the example
			}
			return a
		},
	})
	restore := acme.SetLegoLogger(slog.New(h))
	defer restore()

	// What lego itself calls during a renewal:
	legolog.Infof("[%s] acme: Obtaining bundled SAN certificate", "www.example.org")
	legolog.Warnf("[%s] acme: the server does not support ARI", "www.example.org")
	legolog.Println("acme: Registering account")
	// Output:
	// level=INFO msg="acme: Obtaining bundled SAN certificate" component=lego domain=www.example.org
	// level=WARN msg="acme: the server does not support ARI" component=lego domain=www.example.org
	// level=INFO msg="acme: Registering account" component=lego
}
