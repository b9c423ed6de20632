package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/rampart-sec/rampart/blocklist/server"
)

// watchConfig reloads the allowlist and the feeds from path on SIGHUP and
// when the file changes (checked every 2 s), until ctx ends. A file that
// does not load is logged and ignored: the running configuration stays.
func watchConfig(ctx context.Context, path string, running *server.FileConfig, srv *server.Server, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	type stamp struct {
		size int64
		mod  time.Time
	}
	stat := func() stamp {
		fi, err := os.Stat(path)
		if err != nil {
			return stamp{}
		}
		return stamp{fi.Size(), fi.ModTime()}
	}
	last := stat()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	reload := func(why string) {
		fc, err := server.LoadFile(path)
		if err != nil {
			log.Error("blocklistd: configuration not reloaded; the running one stays", "why", why, "err", err)
			return
		}
		if keys := restartKeys(running, fc); len(keys) > 0 {
			log.Warn("blocklistd: these settings change only at the next restart", "keys", keys)
		}
		cfg := fc.ServerConfig()
		if err := srv.Reconfigure(ctx, cfg.Allow, cfg.Feeds); err != nil {
			log.Error("blocklistd: configuration reload failed", "why", why, "err", err)
			return
		}
		log.Info("blocklistd: configuration reloaded", "why", why, "path", path)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = stat()
			reload("SIGHUP")
		case <-tick.C:
			if s := stat(); s != last {
				last = s
				reload("file changed")
			}
		}
	}
}

// restartKeys names the top-level settings that differ between a and b,
// besides allow, feeds and cli (which a reload applies or does not use).
func restartKeys(a, b *server.FileConfig) []string {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		switch f.Name {
		case "Allow", "Feeds", "CLI":
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, f.Tag.Get("yaml"))
		}
	}
	return out
}
