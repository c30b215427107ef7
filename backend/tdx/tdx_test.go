package tdxbackend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
)

func TestProbesAgainstFakedRoot(t *testing.T) {
	if _, err := backend.Lookup(Name); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	b := Backend{Root: root}
	if b.Available() {
		t.Fatal("available without /dev/tdx_guest")
	}
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "dev", "tdx_guest"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !b.Available() {
		t.Fatal("not available with /dev/tdx_guest")
	}
	if err := b.Configured(); err == nil || !strings.Contains(err.Error(), "enarx platform tdx fetch") {
		t.Fatalf("Configured without collateral: %v", err)
	}
}
