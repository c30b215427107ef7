// Command echo copies stdin to stdout.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o echo.wasm ./examples/echo
// Run:   echo hi | enarx run --wasmcfgfile examples/echo/Enarx.toml echo.wasm
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
