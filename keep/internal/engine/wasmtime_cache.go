//go:build cgo && wasmtime

package engine

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/bytecodealliance/wasmtime-go/v44"
	"golang.org/x/sys/unix"
)

// The wasmtime compilation cache, two files per module in
// <cache>/wasmtime-<version>-<settings>/:
//
//	<hex SHA-256 of the module>.cwasm  wasmtime's Module.Serialize
//	<hex SHA-256 of the module>.sum    "ENARXWT3" | u64 size | CRC-32C of the .cwasm | u32 n | name (n bytes)
//
// where name is the export holding the refused-growth record. The .cwasm
// is checked against the .sum before wasmtime sees it; wasmtime then maps
// the same open file itself (through /proc/self/fd when /proc is mounted),
// so loading copies nothing: the code pages come straight from the page
// cache. The check reads the file through one small buffer (crcFile)
// rather than a mapping of it: a mapping costs a page fault per few pages
// touched, which on the VM we measure on made checking Go's hello (8 MB)
// take 6.5 ms, against 2 ms read. A truncated, corrupted or mismatched
// entry is recompiled, never loaded (wasmtime trusts a serialized module
// as machine code).
//
// The check is against corruption (a partial write, a bad disk, an entry
// of another module), not against tampering: whoever can rewrite a .cwasm
// (the directory is 0700, the user's) can rewrite its .sum too, whatever
// the digest, so a cryptographic one would only cost time (SHA-256: 6 ms
// per load of Go's hello, CRC-32C: 0.35 ms). The cache is trusted exactly
// as far as the host is, which is why backends whose host is untrusted
// run without one.

const cacheMagic = "ENARXWT3"

// maxCacheEntry bounds what load maps.
const maxCacheEntry = 1 << 31

func (e *wasmtimeEngine) cachePath(key [32]byte, ext string) string {
	return filepath.Join(e.cacheDir, hex.EncodeToString(key[:])+ext)
}

// load checks and deserializes the entry for key.
func (e *wasmtimeEngine) load(key [32]byte) (*wasmtimeModule, error) {
	sum, err := os.ReadFile(e.cachePath(key, ".sum"))
	if err != nil {
		return nil, err
	}
	if len(sum) < len(cacheMagic)+8+4+4 || string(sum[:len(cacheMagic)]) != cacheMagic {
		return nil, errors.New("not a cache entry")
	}
	rest := sum[len(cacheMagic):]
	size, crc := binary.LittleEndian.Uint64(rest), binary.LittleEndian.Uint32(rest[8:])
	rest = rest[12:]
	n := binary.LittleEndian.Uint32(rest)
	if uint64(n) != uint64(len(rest)-4) {
		return nil, errors.New("cache entry with a bad name length")
	}
	name := string(rest[4:])
	f, err := os.Open(e.cachePath(key, ".cwasm"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() <= 0 || st.Size() > maxCacheEntry || uint64(st.Size()) != size {
		return nil, errors.New("cache entry of a bad size")
	}
	var mod *wasmtime.Module
	if e.mapped {
		if err := crcFile(f, st.Size(), crc); err != nil {
			return nil, err
		}
		// The file just checked, not whatever the path names by now,
		// where /proc is mounted; else the path is reopened: only the
		// owner of the 0700 directory, as trusted as the cache itself,
		// could have swapped the file meanwhile.
		path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if !fileIs(path, st) {
			path = e.cachePath(key, ".cwasm")
		}
		mod, err = wasmtime.NewModuleDeserializeFile(e.eng, path)
	} else {
		// wasmtime copies the checked bytes into executable memory.
		b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		if crc32.Checksum(b, castagnoli) != crc {
			unix.Munmap(b)
			return nil, errCorruptEntry
		}
		mod, err = wasmtime.NewModuleDeserialize(e.eng, b)
		unix.Munmap(b)
	}
	if err != nil {
		return nil, err
	}
	return newWasmtimeModule(e, mod, name), nil
}

// fileIs reports whether path names the file st describes.
func fileIs(path string, st os.FileInfo) bool {
	ps, err := os.Stat(path)
	return err == nil && os.SameFile(ps, st)
}

// save writes m's entry for key: each file written to a temporary file and
// renamed into place (the artefact first), so concurrent runs never see a
// partial file, and a .sum that does not match its .cwasm is refused.
func (e *wasmtimeEngine) save(key [32]byte, m *wasmtimeModule) error {
	art, err := m.mod.Serialize()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.cacheDir, 0o700); err != nil {
		return err
	}
	sum := binary.LittleEndian.AppendUint64([]byte(cacheMagic), uint64(len(art)))
	sum = binary.LittleEndian.AppendUint32(sum, crc32.Checksum(art, castagnoli))
	sum = binary.LittleEndian.AppendUint32(sum, uint32(len(m.requested)))
	sum = append(sum, m.requested...)
	if err := writeAtomic(e.cachePath(key, ".cwasm"), e.cacheDir, art); err != nil {
		return err
	}
	return writeAtomic(e.cachePath(key, ".sum"), e.cacheDir, sum)
}

func writeAtomic(path, dir string, b []byte) error {
	f, err := os.CreateTemp(dir, "tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("renaming a cache entry into place: %w", err)
	}
	return nil
}
