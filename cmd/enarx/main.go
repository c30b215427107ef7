// Command enarx runs WebAssembly workloads in Keeps. See the README.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/enarx-go/enarx/backend/sandbox"
	"github.com/enarx-go/enarx/internal/cli"
	"github.com/enarx-go/enarx/keep"
)

func main() {
	// This binary runs sandbox Keeps when re-executed. A Keep starts here,
	// before the command tree and the signal handling it does not use
	// (docs/sandbox.md). Its default logger is the one the hidden command
	// would have set up (warn, to stderr; a Keep's environment has no
	// ENARX_LOG); the Keep logs through its own, at the host's level.
	if sandbox.IsKeepProcess() {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	sandbox.ServeKeeps(keep.Run)
	// The process ends when Execute returns: a Keep of the nil backend,
	// which runs in it, is stopped by that end (cli.EndsProcess).
	cli.EndsProcess()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
