package emulated

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// loadOrCreate returns what parse makes of the root file at p, creating it
// from generate on first use. The first process to create the file wins:
// it is linked into place (which fails if the name exists), never renamed
// over, so every concurrent caller ends up with the root that stays on disk
// and that a Steward policy will name. what names the root in errors.
func loadOrCreate[T any](p, what string, generate func() ([]byte, error), parse func([]byte) (T, error)) (T, error) {
	var zero T
	load := func() (T, bool, error) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return zero, false, nil
		}
		if err != nil {
			return zero, false, fmt.Errorf("reading %s: %w", what, err)
		}
		r, err := parse(b)
		if err != nil {
			return zero, false, fmt.Errorf("%s %s is corrupt (delete it to generate a new one): %w", what, p, err)
		}
		return r, true, nil
	}
	if r, ok, err := load(); ok || err != nil {
		return r, err
	}
	out, err := generate()
	if err != nil {
		return zero, fmt.Errorf("generating %s: %w", what, err)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return zero, fmt.Errorf("creating the directory for %s: %w", what, err)
	}
	if err := createExclusive(p, out); err != nil && !errors.Is(err, fs.ErrExist) {
		return zero, fmt.Errorf("saving %s: %w", what, err)
	}
	// Ours, or the one another process created first.
	r, ok, err := load()
	if err == nil && !ok {
		err = fmt.Errorf("%s %s vanished after it was created", what, p)
	}
	return r, err
}

// createExclusive writes data (0600, synced) to a temporary file next to p
// and links it to p; it fails with fs.ErrExist if p exists.
func createExclusive(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, p)
}
