// Command hello prints a greeting: the smallest Enarx workload.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o hello.wasm ./examples/hello
// Run:   enarx run --wasmcfgfile examples/hello/Enarx.toml hello.wasm
package main

import "fmt"

func main() {
	fmt.Println("Hello, world!")
}
