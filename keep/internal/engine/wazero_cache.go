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
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
)

// The wazero engine's own cache, beside wazero's compiled code: the module
// as package instrument rewrote it, one file per module in
// <cache>/enarx-wazero-<settings>/<hex SHA-256 of the module>:
//
//	"ENARXWZ2" | u64 size of the rest | CRC-32C of the rest |
//	u64 size of the code entry | CRC-32C of the code entry | u32 n | globals (n bytes) | module
//
// where globals names the exported globals of the inserted checks and the
// exported start function, "stop\nfuel\nstart" (wazeroModule), and the
// code entry is the file of wazero's own cache that holds the module's
// compiled code (wazeroCodeFile). wazero checks only the machine code in
// it against a CRC, not its header, the functions' offsets into the code
// or the tables after it: one of those damaged made wazero run code from
// the wrong offset, or allocate what a damaged count said until the
// process died (TestCorruptWazeroCode). So the whole code entry is checked
// against the size and CRC recorded here before wazero reads it (2–3 ms
// for Go's hello, 10 MB), and a compilation removes the code entry first:
// wazero would otherwise load one that no entry of ours vouches for.
//
// A hit spares the rewrite (about 16 ms for Go's 2.6 MB hello, 30–45 ms in
// a fresh process) and, because the directory is named after
// Config.CacheTag, the caller's pre-compile checks, which the module
// passed when the entry was made. wazero still decodes and validates the
// module it is given. Like the compiled code, the entry is trusted as far
// as the host is (the checksum catches corruption, not tampering), and
// backends whose host is untrusted run without a cache.

const wazeroCacheMagic = "ENARXWZ2"

// castagnoli is the CRC-32C table of the cache checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// wazeroSettings names the rewrite, whose output the cache holds under the
// digest of the module before it; a new one gets a new directory. Every
// module gets the checks (with Config.NoInterrupt too: they are the
// guest's preemption points), so one directory serves both settings.
var wazeroSettings = fmt.Sprintf("instrument-v%d;interrupt;tables;code-crc", instrument.Version)

func wazeroCacheDir(root, tag string) string {
	sum := sha256.Sum256([]byte(wazeroSettings + ";tag=" + tag))
	return filepath.Join(root, "enarx-wazero-"+hex.EncodeToString(sum[:4]))
}

// wazeroCodeFile is the file of wazero's own compilation cache under root
// that holds the code wazero compiles from inst (an instrumented module):
// wazero 1.12's fileCacheKey (internal/engine/wazevo/engine_cache.go) of
// the module ID AssignModuleID gives inst compiled without function
// listeners or ensureTermination (newWazero), in the directory that
// NewCompilationCacheWithDir makes. TestWazeroCodeFile fails when a new
// wazero names it otherwise.
func wazeroCodeFile(root string, inst []byte) string {
	id := sha256.New()
	id.Write(inst)
	id.Write([]byte{0}) // ensureTermination: false
	key := sha256.New()
	key.Write(id.Sum(nil))
	key.Write([]byte("WAZEVO"))
	key.Write(binary.LittleEndian.AppendUint64(nil, wazeroCPUFeatures()))
	return filepath.Join(root, "wazero-"+wazeroVersion()+"-"+runtime.GOARCH+"-"+runtime.GOOS, hex.EncodeToString(key.Sum(nil)))
}

// wazeroCPUFeatures is wazero's platform.CpuFeatures.Raw().
func wazeroCPUFeatures() uint64 {
	var f uint64
	switch runtime.GOARCH {
	case "amd64":
		if cpu.X86.HasSSE41 {
			f |= 1
		}
		if cpu.X86.HasBMI1 {
			f |= 2
		}
		if cpu.X86.HasBMI1 && cpu.X86.HasBMI2 && cpu.X86.HasPOPCNT {
			f |= 4
		}
	case "arm64":
		if cpu.ARM64.HasATOMICS {
			f |= 1
		}
	}
	return f
}

// wazeroVersion is wazero's version.GetWazeroVersion(): the version of the
// wazero module this binary was built with, "dev" if it has none.
var wazeroVersion = sync.OnceValue(func() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if strings.Contains(d.Path, "github.com/tetratelabs/wazero") {
				v = d.Version
			}
		}
		if v == "" || v == "(devel)" {
			v = info.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
})

// codeSum is the size and CRC-32C of a code entry.
type codeSum struct {
	size uint64
	crc  uint32
}

// sumCode reads the code entry for inst.
func (e *wazeroEngine) sumCode(inst []byte) (codeSum, error) {
	f, err := os.Open(wazeroCodeFile(e.root, inst))
	if err != nil {
		return codeSum{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return codeSum{}, err
	}
	if !st.Mode().IsRegular() || st.Size() <= 0 || st.Size() > maxCodeEntry {
		return codeSum{}, errors.New("compiled code entry of a bad size or type")
	}
	crc, err := fileCRC(f, st.Size())
	if err != nil {
		return codeSum{}, err
	}
	return codeSum{size: uint64(st.Size()), crc: crc}, nil
}

// maxCodeEntry bounds the code entries checked.
const maxCodeEntry = 1 << 31

// loadInstrumented maps and checks the entry for key, and checks the code
// entry it vouches for. The mapping stays until the engine closes (wazero
// may keep references into the module).
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
	const fixed = 8 + 4 + 4 // code entry's size and CRC, n
	if st.Size() < int64(head+fixed) || st.Size() > 1<<31 {
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
	want := codeSum{size: binary.LittleEndian.Uint64(rest), crc: binary.LittleEndian.Uint32(rest[8:])}
	rest = rest[12:]
	n := binary.LittleEndian.Uint32(rest)
	if uint64(n) > uint64(len(rest)-4) {
		unix.Munmap(b)
		return nil, "", errors.New("cache entry with a bad name length")
	}
	wasm, stop = rest[4+n:], string(rest[4:4+n])
	if got, err := e.sumCode(wasm); err != nil || got != want {
		unix.Munmap(b)
		if err == nil {
			err = errCorruptEntry
		}
		return nil, "", fmt.Errorf("the compiled code's cache entry: %w", err)
	}
	e.mappings = append(e.mappings, b)
	return wasm, stop, nil
}

// saveInstrumented writes the entry for key (temporary file, renamed),
// vouching for the code entry wazero wrote as it compiled wasm.
func (e *wazeroEngine) saveInstrumented(key [32]byte, wasm []byte, stop string) error {
	code, err := e.sumCode(wasm)
	if err != nil {
		return fmt.Errorf("reading the compiled code's cache entry: %w", err)
	}
	rest := binary.LittleEndian.AppendUint64(nil, code.size)
	rest = binary.LittleEndian.AppendUint32(rest, code.crc)
	rest = binary.LittleEndian.AppendUint32(rest, uint32(len(stop)))
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

var errCorruptEntry = errors.New("cache entry fails its integrity check")

// fileCRC returns the CRC-32C of the size bytes of f, reading them through
// one 64 KiB buffer (faster here than a mapping: see wasmtime_cache.go).
func fileCRC(f *os.File, size int64) (uint32, error) {
	buf := make([]byte, 64<<10)
	var crc uint32
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		crc = crc32.Update(crc, castagnoli, buf[:n])
		off += int64(n)
		if err != nil && off < size {
			return 0, fmt.Errorf("reading the cache entry: %w", err)
		}
	}
	return crc, nil
}

// crcFile checks that the size bytes of f have the CRC-32C want.
func crcFile(f *os.File, size int64, want uint32) error {
	crc, err := fileCRC(f, size)
	if err != nil {
		return err
	}
	if crc != want {
		return errCorruptEntry
	}
	return nil
}
