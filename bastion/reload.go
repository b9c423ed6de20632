package bastion

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// WatchConfig reloads users, groups and targets from the config file at
// path into s (see [Server.Reload]) whenever poll finds the file or
// users_dir changed ([Config.Stamp]) or a signal arrives on hup (nil: poll only),
// until ctx ends. cfg is the config s was started with. A config that
// fails to load or validate is logged and the previous policy kept, so
// "bastion user add|disable|remove" need no restart and no signal.
func (s *Server) WatchConfig(ctx context.Context, path string, cfg *Config, poll time.Duration, hup <-chan os.Signal, logger *slog.Logger) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	stamp := cfg.Stamp(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-tick.C:
			if cfg.Stamp(path) == stamp {
				continue
			}
		}
		stamp = cfg.Stamp(path)
		next, err := LoadConfig(path)
		if err == nil {
			var n int
			if n, err = s.Reload(next); err == nil {
				logger.Info("bastion: reloaded users, groups and targets", "users", n, "disabled", len(next.DisabledUsers()))
				continue
			}
		}
		logger.Error("bastion: reload failed; keeping the previous policy", "err", err)
	}
}
