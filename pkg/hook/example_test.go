package hook_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampart-sec/rampart/pkg/hook"
)

func ExampleRun() {
	res, err := hook.Run(context.Background(), slog.New(slog.DiscardHandler),
		hook.Hook{Command: "echo reload nginx", Timeout: 10 * time.Second})
	fmt.Printf("%d %q %v\n", res.ExitCode, res.Output, err)
	// Output: 0 "reload nginx\n" <nil>
}
