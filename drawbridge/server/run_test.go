package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileBucketOneProcess: a file:// bucket, whose conditional creates are
// not atomic across processes, is taken by one registry at a time, like a
// store directory; closing the registry frees it.
func TestFileBucketOneProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := openStore(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := openStore(ctx, "file://"+dir); err == nil {
		second.Close()
		t.Fatal("a second registry opened the same file:// bucket")
	} else if !strings.Contains(err.Error(), "in use by another drawbridge process") {
		t.Fatalf("second open: %v", err)
	}
	first.Close()
	third, err := openStore(ctx, "file://"+dir)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	third.Close()
	if _, err := openStore(ctx, "file://"+filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing bucket directory opened")
	}
	// Other schemes are not locked.
	m1, err := openStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
}
