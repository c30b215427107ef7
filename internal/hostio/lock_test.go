package hostio

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
)

// sealedCfg is a config of one sealed entry "db" over dir.
func sealedCfg(dir string, readOnly bool) *config.Config {
	e := dirEntry("db", config.SourceSealed, dir, "snp")
	e.Dir.ReadOnly = readOnly
	return &config.Config{Files: []config.File{{Kind: config.KindStdin, Name: "stdin"}, e}}
}

// inUse reports whether err is the error of a sealed volume locked by
// another Keep.
func inUse(err error, dir string) bool {
	return err != nil && strings.Contains(err.Error(),
		`fd 1 (dir "db"): sealed volume "db" at `+dir+` is in use by another Keep (lock held); stop it or use another directory`)
}

// TestSealedLock: a sealed entry's host directory is locked while the
// files Open returned (and every copy of the descriptor, as passed to a
// Keep) live: a second read-write open fails until the first is closed;
// read-only opens share the directory, but not with a read-write one.
func TestSealedLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	first, err := Open(ctx, sealedCfg(dir, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, sealedCfg(dir, false)); !inUse(err, dir) {
		t.Fatalf("second read-write open beside a read-write one: %v, want the in-use error", err)
	}
	if _, err := Open(ctx, sealedCfg(dir, true)); !inUse(err, dir) {
		t.Fatalf("read-only open beside a read-write one: %v, want the in-use error", err)
	}
	// The copy a backend hands the Keep holds the lock too.
	keepCopy, err := unix.FcntlInt(first[1].Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	Close(first)
	if _, err := Open(ctx, sealedCfg(dir, false)); !inUse(err, dir) {
		t.Fatalf("open while the Keep's copy lives: %v, want the in-use error", err)
	}
	unix.Close(keepCopy)

	second, err := Open(ctx, sealedCfg(dir, false))
	if err != nil {
		t.Fatalf("open after the first Keep's files are closed: %v", err)
	}
	Close(second)

	r1, err := Open(ctx, sealedCfg(dir, true))
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r1)
	r2, err := Open(ctx, sealedCfg(dir, true))
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	defer Close(r2)
	if _, err := Open(ctx, sealedCfg(dir, false)); !inUse(err, dir) {
		t.Fatalf("read-write open beside read-only ones: %v, want the in-use error", err)
	}
}

// TestSealedLockReleasedOnError: when Open fails on a later entry, the
// lock it took on an earlier sealed entry is released with its file.
func TestSealedLockReleasedOnError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := sealedCfg(dir, false)
	cfg.Files = append(cfg.Files, dirEntry("gone", config.SourceHost, filepath.Join(dir, "missing"), ""))
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open with a missing directory: %v", err)
	}
	files, err := Open(ctx, sealedCfg(dir, false))
	if err != nil {
		t.Fatalf("open after a failed Open: %v", err)
	}
	Close(files)
}

// TestHostDirNotLocked: a host (plaintext) entry takes no lock; two
// Keeps may share such a directory as before.
func TestHostDirNotLocked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := &config.Config{Files: []config.File{dirEntry("h", config.SourceHost, dir, "")}}
	a, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(a)
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("second open of a host directory: %v", err)
	}
	defer Close(b)
	s, err := Open(ctx, sealedCfg(dir, false))
	if err != nil {
		t.Fatalf("a sealed open beside host opens: %v", err)
	}
	Close(s)
}
