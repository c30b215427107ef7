// Package engine runs the Keep's wasm: two engines behind one small
// interface (api.go) — wazero, pure Go, in every build, and wasmtime
// (Cranelift, through cgo) in builds made with -tags wasmtime — each with
// an on-disk compilation cache, linear memory that never moves or copies
// when it grows, a memory limit whose breach is reported as a clear error,
// and interruption of a computing guest when its context ends.
//
// Trust: the guest module is untrusted; both engines validate it. The
// compilation cache directory holds machine code that the host can modify:
// entries are integrity-checked (wasmtime: CRC-32C of the whole entry;
// wazero: enarx's rewritten module by a CRC-32C, and wazero's entry of the
// compiled code by the size and CRC-32C of the whole file that the
// rewritten module's entry records: wazero's own check covers only the
// machine code, not the offsets into it),
// which guards against corruption but not against a host that rewrites
// both. Backends whose host is not trusted (TEEs, the microVM Keep in a
// TEE) must run with the cache disabled; the nil and sandbox backends
// share the host's trust.
package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// DefaultMemoryLimit is the linear-memory cap when none is given: 4 GiB,
// the whole wasm32 address space.
const DefaultMemoryLimit = 4 << 30

// pageSize is the wasm page size.
const pageSize = 65536

// DefaultCacheDir is where the compilation cache lives by default.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (set --no-cache or XDG_CACHE_HOME): %w", err)
	}
	return filepath.Join(d, "enarx", "wasm"), nil
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
