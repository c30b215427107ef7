package keep

import (
	"os"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

func TestIsGoModule(t *testing.T) {
	goWasm, err := os.ReadFile(testutil.BuildWasm(t, "testdata/hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !isGoModule(goWasm) {
		t.Error("Go module not recognised")
	}
	// Truncations never panic; before the section name is complete
	// (8-byte header, id, size, name length, 10-byte name) none matches.
	for i := 0; i < 64; i++ {
		if isGoModule(goWasm[:i]) && i < 8+1+1+1+10 {
			t.Errorf("truncated module (%d bytes) recognised", i)
		}
	}
	for _, m := range [][]byte{wasmtest.Return1(), nil, []byte("\x00asm\x01\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff")} {
		if isGoModule(m) {
			t.Errorf("%x recognised as Go", m)
		}
	}
}
