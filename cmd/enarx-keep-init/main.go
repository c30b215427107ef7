// Command enarx-keep-init is /init of a microVM Keep's initramfs: PID 1 of
// the Keep's guest. It is built static (CGO_ENABLED=0) into the Keep image
// (see microvm/image and `make keep-image`) and is not meant to be run
// anywhere else. See package backend/microvm/guest.
package main

import (
	"fmt"
	"os"

	"github.com/enarx-go/enarx/backend/microvm/guest"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "enarx-keep-init is the init process of a microVM Keep; it runs only as PID 1 inside the Keep's VM (enarx run --backend kvm)")
		os.Exit(2)
	}
	guest.Main()
}
