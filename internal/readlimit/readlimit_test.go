package readlimit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFile: a file of exactly the limit is read whole; one byte more, or
// an endless file, is ErrTooLarge; a missing file is the open's error.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	at := filepath.Join(dir, "at")
	over := filepath.Join(dir, "over")
	if err := os.WriteFile(at, make([]byte, 64), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, make([]byte, 65), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := File(at, 64); err != nil || len(b) != 64 {
		t.Errorf("at the limit: %d bytes, %v", len(b), err)
	}
	if b, err := File(over, 64); !errors.Is(err, ErrTooLarge) || b != nil {
		t.Errorf("over the limit: %d bytes, %v", len(b), err)
	}
	if _, err := File("/dev/zero", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an endless file: %v", err)
	}
	if _, err := File(filepath.Join(dir, "missing"), 64); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
