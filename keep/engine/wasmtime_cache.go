//go:build cgo && wasmtime

package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

// The wasmtime compilation cache: one file per module,
// <cache>/wasmtime-<version>-<settings>/<hex SHA-256 of the module>, laid
// out as
//
//	"ENARXWT1" | SHA-256 of the rest (32) | u32 name length | name | artefact
//
// where name is the export holding the refused-growth record and artefact
// is wasmtime's Module.Serialize. The digest is checked over the mapped
// file before wasmtime sees a byte: a truncated or corrupted entry is
// recompiled, never loaded (wasmtime trusts a serialized module as
// machine code). It does not make a cache written by an untrusted host
// safe, which is why such backends run without one.

const cacheMagic = "ENARXWT1"

// maxCacheEntry bounds what load maps.
const maxCacheEntry = 1 << 31

func (e *wasmtimeEngine) cachePath(key [32]byte) string {
	return filepath.Join(e.cacheDir, hex.EncodeToString(key[:]))
}

// load maps the entry for key, checks it and deserializes it.
func (e *wasmtimeEngine) load(key [32]byte) (*wasmtimeModule, error) {
	f, err := os.Open(e.cachePath(key))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(cacheMagic))+32+4 || size > maxCacheEntry {
		return nil, errors.New("cache entry of a bad size")
	}
	// Map rather than read: the pages come straight from the page cache.
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(b)
	_ = unix.Madvise(b, unix.MADV_SEQUENTIAL|unix.MADV_WILLNEED)
	if string(b[:len(cacheMagic)]) != cacheMagic {
		return nil, errors.New("not a cache entry")
	}
	rest := b[len(cacheMagic)+32:]
	if sum := sha256.Sum256(rest); !bytes.Equal(sum[:], b[len(cacheMagic):len(cacheMagic)+32]) {
		return nil, errors.New("cache entry fails its integrity check")
	}
	n := binary.LittleEndian.Uint32(rest)
	if uint64(n) > uint64(len(rest)-4) {
		return nil, errors.New("cache entry with a bad name length")
	}
	name, art := string(rest[4:4+n]), rest[4+n:]
	// wasmtime copies the artefact into its own executable mapping.
	mod, err := wasmtime.NewModuleDeserialize(e.eng, art)
	if err != nil {
		return nil, err
	}
	return newWasmtimeModule(e, mod, name), nil
}

// save writes m's entry for key: a temporary file renamed into place,
// so concurrent runs never see a partial entry.
func (e *wasmtimeEngine) save(key [32]byte, m *wasmtimeModule) error {
	art, err := m.mod.Serialize()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.cacheDir, 0o700); err != nil {
		return err
	}
	rest := binary.LittleEndian.AppendUint32(nil, uint32(len(m.requested)))
	rest = append(rest, m.requested...)
	rest = append(rest, art...)
	sum := sha256.Sum256(rest)
	f, err := os.CreateTemp(e.cacheDir, "tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	for _, b := range [][]byte{[]byte(cacheMagic), sum[:], rest} {
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), e.cachePath(key)); err != nil {
		return fmt.Errorf("renaming a cache entry into place: %w", err)
	}
	return nil
}
