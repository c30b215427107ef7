package tdx

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

func TestGuestCheck(t *testing.T) {
	tsmDir := fstest.MapFS{"sys/kernel/config/tsm/report": {Mode: fs.ModeDir | 0o755}}
	provider := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }
	if err := GuestCheck(fstest.MapFS{"dev/tdx_guest": {Mode: fs.ModeDevice | fs.ModeCharDevice}}, nil); err != nil {
		t.Errorf("tdx_guest device: %v", err)
	}
	if err := GuestCheck(tsmDir, provider(tsm.ProviderTDX)); err != nil {
		t.Errorf("configfs-tsm with tdx_guest: %v", err)
	}
	err := GuestCheck(tsmDir, provider(tsm.ProviderSNP))
	if !errors.Is(err, tsm.ErrWrongProvider) || !strings.Contains(err.Error(), `"sev_guest", not "tdx_guest"`) {
		t.Errorf("configfs-tsm with sev_guest: %v", err)
	}
	if err := GuestCheck(fstest.MapFS{}, nil); err == nil || !strings.Contains(err.Error(), "/dev/tdx_guest is missing") {
		t.Errorf("bare machine: %v", err)
	}
}
