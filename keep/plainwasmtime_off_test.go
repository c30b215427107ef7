//go:build !(cgo && wasmtime)

package keep_test

import "testing"

// havePlainWasmtime: builds without -tags wasmtime have no wasmtime-go.
const havePlainWasmtime = false

func plainWasmtime(b testing.TB, _ []byte, _ string, _ bool, _, _ string, _ ...string) {
	b.Skip("the plain wasmtime baseline needs a build with cgo and -tags wasmtime")
}
