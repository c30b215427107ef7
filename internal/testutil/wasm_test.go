package testutil

import (
	"bytes"
	"os"
	"testing"
)

func TestBuildWasm(t *testing.T) {
	p := BuildWasm(t, "testdata/hello")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s is not a wasm module", p)
	}
	if q := BuildWasm(t, "testdata/hello"); q != p {
		t.Fatalf("second build not cached: %s != %s", q, p)
	}
}
