// Command enarx runs WebAssembly workloads in Keeps. See the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/enarx-go/enarx/backend/sandbox"
	"github.com/enarx-go/enarx/internal/cli"
)

func main() {
	// This binary runs sandbox Keeps when re-executed (hidden command).
	sandbox.EnableServing()
	// The process ends when Execute returns: a Keep of the nil backend,
	// which runs in it, is stopped by that end (cli.EndsProcess).
	cli.EndsProcess()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
