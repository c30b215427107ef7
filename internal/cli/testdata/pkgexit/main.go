// pkgexit is a deploy test workload: it exits 42 when its config passed the
// argument "from-config" (proving Enarx.toml came with it), 7 otherwise.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "pkgexit running with", os.Args[1:])
	if len(os.Args) > 1 && os.Args[1] == "from-config" {
		os.Exit(42)
	}
	os.Exit(7)
}
