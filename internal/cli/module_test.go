package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReadModulePrivateIsACopy: a module read for a Keep whose evidence
// names it (private) does not change when its file does afterwards, while
// the mapping used otherwise shows the file's later contents — which is
// why a TEE backend must not hash one view and compile another.
func TestReadModulePrivateIsACopy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.wasm")
	orig := bytes.Repeat([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 1024)
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	copied, err := readModule(p, true)
	if err != nil {
		t.Fatal(err)
	}
	mapped, err := readModule(p, false)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed"), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.Equal(copied, orig) {
		t.Fatal("the private read changed with its file")
	}
	if bytes.Equal(mapped, orig) {
		t.Fatal("the mapping did not show the file's change: the test no longer shows why private reads copy")
	}
}
