package snpbackend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
)

func TestRegistered(t *testing.T) {
	for _, n := range []string{Name, EmulatedName} {
		if _, err := backend.Lookup(n); err != nil {
			t.Fatal(err)
		}
	}
	// The emulated backend must never win an implicit selection over nil.
	if Emulated.Protection() >= backend.ProtectionNone {
		t.Fatal("snp-emulated must rank below nil")
	}
}

func TestAvailableFromFakedRoot(t *testing.T) {
	root := t.TempDir()
	if (Backend{Root: root}).Available() {
		t.Fatal("available without /dev/sev-guest")
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "sev-guest"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b := Backend{Root: root}
	if !b.Available() {
		t.Fatal("not available with /dev/sev-guest")
	}
	t.Setenv("ENARX_SNP_CACHE", "/cache")
	if err := b.Configured(); err == nil || !strings.Contains(err.Error(), "enarx platform snp fetch") {
		t.Fatalf("Configured without CRLs: %v", err)
	}
}
