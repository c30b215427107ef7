package readlimit

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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
	// A device, such as an endless /dev/zero, is no file to read.
	if _, err := File("/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a device: %v", err)
	}
	if _, err := File(dir, 64); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory: %v", err)
	}
	// A link to a regular file is read.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(at, link); err != nil {
		t.Fatal(err)
	}
	if b, err := File(link, 64); err != nil || len(b) != 64 {
		t.Errorf("a link to a file: %d bytes, %v", len(b), err)
	}
	if _, err := File(filepath.Join(dir, "missing"), 64); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestFileFIFO: a FIFO that no writer opens (one a host planted in a
// cache directory) is an error at once; before, the open blocked forever.
func TestFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := File(fifo, 64)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("a FIFO: %v", err)
		}
	case <-time.After(time.Minute): // hang guard, not a timing claim
		t.Fatal("reading a FIFO without a writer blocks")
	}
}
