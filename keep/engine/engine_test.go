package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

func TestLimits(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{NoCache: true, MemoryLimit: 5 << 30}); err == nil {
		t.Fatal("accepted a limit above 4 GiB")
	}
	if _, err := New(ctx, Config{NoCache: true, MemoryLimit: 100}); err == nil {
		t.Fatal("accepted a limit below one page")
	}
	e, err := New(ctx, Config{NoCache: true, MemoryLimit: 3*pageSize + 7})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if e.Limit() != 3*pageSize {
		t.Fatalf("limit %d not rounded down to pages", e.Limit())
	}
	// Growing past the limit is refused and recorded.
	mod, err := e.Runtime.Instantiate(e.Context(ctx), wasmtest.Memory(1))
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	if _, ok := mem.Grow(2); !ok {
		t.Fatal("growth within the limit refused")
	}
	if _, ok := mem.Grow(1); ok {
		t.Fatal("growth past the limit allowed")
	}
	if req, ok := e.Breach(); !ok || req != 4*pageSize {
		t.Fatalf("breach %d %v", req, ok)
	}
}

func TestGrowthDoesNotMove(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	mod, err := e.Runtime.Instantiate(e.Context(ctx), wasmtest.Memory(1))
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	mem.WriteByte(10, 42)
	before, _ := mem.Read(0, 1)
	if _, ok := mem.Grow(1000); !ok {
		t.Fatal("grow")
	}
	after, _ := mem.Read(0, 1)
	if &before[0] != &after[0] {
		t.Fatal("memory moved on growth")
	}
	if b, _ := mem.ReadByte(10); b != 42 {
		t.Fatal("contents lost")
	}
}

func TestCacheDirectory(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	e, err := New(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Runtime.CompileModule(ctx, wasmtest.Return1()); err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "wazero-") {
		t.Fatalf("cache dir has %v (%v); want one wazero-<version> directory", entries, err)
	}
	// An unusable cache directory is a clear error.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := New(ctx, Config{CacheDir: filepath.Join(f, "sub")}); err == nil || !strings.Contains(err.Error(), "--no-cache") {
		t.Fatalf("err %v", err)
	}
}
