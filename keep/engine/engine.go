// Package engine configures wazero for the Keep: the optimizing compiler,
// an on-disk compilation cache, and linear memory that is reserved at its
// maximum up front (so growth never copies) and capped by a memory limit
// whose breach is reported as a clear error.
//
// Trust: the compilation cache directory holds machine code that the host
// can modify. Backends whose host is not trusted (TEEs) must run with the
// cache disabled; the nil and sandbox backends share the host's trust.
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// DefaultMemoryLimit is the linear-memory cap when none is given: 4 GiB,
// the whole wasm32 address space.
const DefaultMemoryLimit = 4 << 30

// pageSize is the wasm page size.
const pageSize = 65536

// Config configures an Engine.
type Config struct {
	// CacheDir is the compilation cache root ("" = the user cache dir,
	// e.g. ~/.cache/enarx/wasm). wazero keeps a subdirectory per wazero
	// version, and keys entries by the module's SHA-256, so a changed module
	// or wazero version never reuses stale code; entries are written to a
	// temporary file and renamed, so concurrent runs are safe.
	CacheDir string
	// NoCache disables the compilation cache.
	NoCache bool
	// MemoryLimit caps linear memory in bytes (0 = DefaultMemoryLimit;
	// rounded down to whole 64 KiB pages; at most 4 GiB).
	MemoryLimit uint64
}

// Engine is one wazero runtime plus its memory allocator.
type Engine struct {
	Runtime wazero.Runtime
	alloc   *allocator
	cache   wazero.CompilationCache
}

// DefaultCacheDir is where the compilation cache lives by default.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (set --no-cache or XDG_CACHE_HOME): %w", err)
	}
	return filepath.Join(d, "enarx", "wasm"), nil
}

// New returns a configured engine. Close it when done.
func New(ctx context.Context, c Config) (*Engine, error) {
	limit := c.MemoryLimit
	if limit == 0 || limit > DefaultMemoryLimit {
		if limit > DefaultMemoryLimit {
			return nil, fmt.Errorf("memory limit %d bytes is above the wasm32 maximum of 4 GiB", limit)
		}
		limit = DefaultMemoryLimit
	}
	limit -= limit % pageSize
	if limit == 0 {
		return nil, fmt.Errorf("memory limit %d bytes is below one 64 KiB wasm page", c.MemoryLimit)
	}
	rc := wazero.NewRuntimeConfigCompiler().
		// Never enable close-on-context-done by default: its checks slow
		// tight loops several times over.
		WithCloseOnContextDone(false)
	e := &Engine{alloc: &allocator{limit: limit}}
	if !c.NoCache {
		dir := c.CacheDir
		if dir == "" {
			d, err := DefaultCacheDir()
			if err != nil {
				return nil, err
			}
			dir = d
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating compilation cache %s (or use --no-cache): %w", dir, err)
		}
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, fmt.Errorf("opening compilation cache %s (or use --no-cache): %w", dir, err)
		}
		e.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	e.Runtime = wazero.NewRuntimeWithConfig(ctx, rc)
	return e, nil
}

// Context returns ctx carrying the engine's memory allocator; pass it when
// instantiating the guest.
func (e *Engine) Context(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, e.alloc)
}

// Limit is the memory cap in bytes.
func (e *Engine) Limit() uint64 { return e.alloc.limit }

// Breach reports whether the guest asked for more memory than the limit,
// and how much it asked for.
func (e *Engine) Breach() (requested uint64, breached bool) {
	e.alloc.mu.Lock()
	defer e.alloc.mu.Unlock()
	return e.alloc.refused, e.alloc.refused > 0
}

// Close releases the runtime (and with it all guest memory).
func (e *Engine) Close(ctx context.Context) error {
	err := e.Runtime.Close(ctx)
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// allocator reserves each linear memory's maximum (capped by limit) as one
// anonymous, lazily committed mapping, so memory.grow never moves or copies
// it and untouched pages cost nothing. (wazero's WithMemoryCapacityFromMax
// would instead make a Go slice of the maximum size, which the Go runtime
// zeroes in full whenever it reuses heap memory: up to 4 GiB per start.)
type allocator struct {
	limit   uint64
	mu      sync.Mutex
	refused uint64
}

func (a *allocator) Allocate(_, max uint64) experimental.LinearMemory {
	return &linearMemory{a: a, reserve: min(max, a.limit)}
}

type linearMemory struct {
	a       *allocator
	reserve uint64
	buf     []byte
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.reserve {
		m.a.mu.Lock()
		m.a.refused = max(m.a.refused, size)
		m.a.mu.Unlock()
		return nil
	}
	if m.buf == nil {
		if m.reserve == 0 {
			return []byte{}
		}
		b, err := unix.Mmap(-1, 0, int(m.reserve), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			m.a.mu.Lock()
			m.a.refused = max(m.a.refused, size)
			m.a.mu.Unlock()
			return nil
		}
		// Huge pages: far fewer page faults as the guest touches memory.
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
		m.buf = b
	}
	return m.buf[:size]
}

func (m *linearMemory) Free() {
	if m.buf != nil {
		_ = unix.Munmap(m.buf)
		m.buf = nil
	}
}
