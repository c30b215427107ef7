// Command steward is the Enarx attestation CA. See docs/steward.md.
//
// It trusts its command line, environment and the files they name (CA key
// and certificate, policy); every request is untrusted and handled by
// package steward. The flags are parsed by steward/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/enarx-go/enarx/steward/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
