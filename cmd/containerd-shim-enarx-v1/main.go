// Command containerd-shim-enarx-v1 is the containerd shim for the runtime
// type io.containerd.enarx.v1: it runs an OCI image's wasm module in a Keep.
// Install it on containerd's PATH; see docs/kubernetes.md and package shim.
package main

import (
	"os"

	"github.com/enarx-go/enarx/backend/sandbox"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/shim"

	// The backends the enarx binary has, registered as they are there.
	_ "github.com/enarx-go/enarx/backend/microvm"
	_ "github.com/enarx-go/enarx/backend/snp"
	_ "github.com/enarx-go/enarx/backend/tdx"
)

func main() {
	// A sandbox Keep is this binary re-executed by its keep host.
	sandbox.ServeKeeps(keep.Run)
	if shim.IsKeepHost() {
		os.Exit(shim.KeepHostMain())
	}
	shim.Run()
}
