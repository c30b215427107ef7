package snp

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/tsm"
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

func TestGuestCheck(t *testing.T) {
	tsmDir := fstest.MapFS{"sys/kernel/config/tsm/report": {Mode: fs.ModeDir | 0o755}}
	provider := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }
	if err := GuestCheck(fstest.MapFS{"dev/sev-guest": {Mode: fs.ModeDevice | fs.ModeCharDevice}}, nil); err != nil {
		t.Errorf("sev-guest device: %v", err)
	}
	if err := GuestCheck(tsmDir, provider(tsm.ProviderSNP)); err != nil {
		t.Errorf("configfs-tsm with sev_guest: %v", err)
	}
	// configfs-tsm is there in every confidential guest: a TDX guest's
	// provider must not make this an SNP guest.
	err := GuestCheck(tsmDir, provider(tsm.ProviderTDX))
	if !errors.Is(err, tsm.ErrWrongProvider) || !strings.Contains(err.Error(), `"tdx_guest", not "sev_guest"`) {
		t.Errorf("configfs-tsm with tdx_guest: %v", err)
	}
	if err := GuestCheck(fstest.MapFS{}, provider(tsm.ProviderSNP)); err == nil || !strings.Contains(err.Error(), "/dev/sev-guest is missing") {
		t.Errorf("bare machine: %v", err)
	}
	// Available is the same check.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/kernel/config/tsm/report"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := Backend{Root: root}
	if b.Available() || !errors.Is(b.Unavailable(), tsm.ErrUnavailable) {
		t.Errorf("faked root with configfs-tsm whose provider cannot be read: available=%v, %v", b.Available(), b.Unavailable())
	}
}
