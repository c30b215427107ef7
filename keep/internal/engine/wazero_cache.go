package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
)

// The wazero engine's own cache, beside wazero's compiled code: the module
// as package instrument rewrote it, one file per module in
// <cache>/enarx-wazero-<settings>/<hex SHA-256 of the module>:
//
//	"ENARXWZ1" | u64 size of the rest | CRC-32C of the rest | u32 n | globals (n bytes) | module
//
// where globals names the exported globals of the inserted checks and the
// exported start function, "stop\nfuel\nstart" (wazeroModule).
//
// A hit spares the rewrite (about 16 ms for Go's 2.6 MB hello, 30–45 ms in
// a fresh process) and, because the directory is named after
// Config.CacheTag, the caller's pre-compile checks, which the module
// passed when the entry was made. wazero still decodes and validates the
// module it is given. Like the compiled code, the entry is trusted as far
// as the host is (the checksum catches corruption, not tampering), and
// backends whose host is untrusted run without a cache.

const wazeroCacheMagic = "ENARXWZ1"

// castagnoli is the CRC-32C table of the cache checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// wazeroSettings names the rewrite, whose output the cache holds under the
// digest of the module before it; a new one gets a new directory. Every
// module gets the checks (with Config.NoInterrupt too: they are the
// guest's preemption points), so one directory serves both settings.
var wazeroSettings = fmt.Sprintf("instrument-v%d;interrupt;tables", instrument.Version)

func wazeroCacheDir(root, tag string) string {
	sum := sha256.Sum256([]byte(wazeroSettings + ";tag=" + tag))
	return filepath.Join(root, "enarx-wazero-"+hex.EncodeToString(sum[:4]))
}

// loadInstrumented maps and checks the entry for key. The mapping stays
// until the engine closes (wazero may keep references into the module).
func (e *wazeroEngine) loadInstrumented(key [32]byte) (wasm []byte, stop string, err error) {
	f, err := os.Open(filepath.Join(e.instDir, hex.EncodeToString(key[:])))
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	const head = len(wazeroCacheMagic) + 8 + 4
	if st.Size() < int64(head+4) || st.Size() > 1<<31 {
		return nil, "", errors.New("cache entry of a bad size")
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, "", err
	}
	rest := b[head:]
	if string(b[:len(wazeroCacheMagic)]) != wazeroCacheMagic ||
		binary.LittleEndian.Uint64(b[len(wazeroCacheMagic):]) != uint64(len(rest)) ||
		binary.LittleEndian.Uint32(b[len(wazeroCacheMagic)+8:]) != crc32.Checksum(rest, castagnoli) {
		unix.Munmap(b)
		return nil, "", errors.New("cache entry fails its check")
	}
	n := binary.LittleEndian.Uint32(rest)
	if uint64(n) > uint64(len(rest)-4) {
		unix.Munmap(b)
		return nil, "", errors.New("cache entry with a bad name length")
	}
	e.mappings = append(e.mappings, b)
	return rest[4+n:], string(rest[4 : 4+n]), nil
}

// saveInstrumented writes the entry for key (temporary file, renamed).
func (e *wazeroEngine) saveInstrumented(key [32]byte, wasm []byte, stop string) error {
	rest := binary.LittleEndian.AppendUint32(nil, uint32(len(stop)))
	rest = append(rest, stop...)
	rest = append(rest, wasm...)
	b := binary.LittleEndian.AppendUint64([]byte(wazeroCacheMagic), uint64(len(rest)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(rest, castagnoli))
	if err := os.MkdirAll(e.instDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(e.instDir, "tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, rest...)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(e.instDir, hex.EncodeToString(key[:]))); err != nil {
		return fmt.Errorf("renaming a cache entry into place: %w", err)
	}
	return nil
}
