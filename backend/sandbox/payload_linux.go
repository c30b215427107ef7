package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The launch payloads (module, config, bundle) travel in a sealed memfd
// rather than over the control socket. Through the socket a 2.6 MB module
// takes a dozen socket-buffer-sized round trips between host and Keep, each
// waiting for the other process to be scheduled (20–70 ms on a busy
// 2-core machine); the memfd is written once by the host and mapped by the
// Keep with no copy and no round trip. The seals make its contents
// immutable before the Keep checks their digests, so what the Keep verified
// is what it runs.

// payloadSeals are the seals the Keep requires: no write, resize or further
// sealing.
const payloadSeals = unix.F_SEAL_WRITE | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// newPayloadFile returns an empty, non-executable memfd that allows
// sealing; fillPayloadFile fills and seals it.
func newPayloadFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("enarx-keep-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 have no MFD_NOEXEC_SEAL
		fd, err = unix.MemfdCreate("enarx-keep-payload", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), "enarx-keep-payload"), nil
}

// fillPayloadFile writes the payloads to f in order and seals it.
func fillPayloadFile(f *os.File, payloads ...[]byte) error {
	for _, p := range payloads {
		if _, err := f.Write(p); err != nil {
			return fmt.Errorf("writing the payload memfd: %w", err)
		}
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, payloadSeals); err != nil {
		return fmt.Errorf("sealing the payload memfd: %w", err)
	}
	return nil
}

// mapPayload maps the payload memfd fd, which must be sealed (payloadSeals)
// and exactly size bytes long, and closes fd. The mapping is private and
// writable, so a consumer that writes into its module bytes gets a private
// copy of the page instead of a fault.
func mapPayload(fd int, size int64) ([]byte, error) {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != size {
		return nil, fmt.Errorf("payload file has mode %#o and %d bytes, want a regular file of %d", st.Mode, st.Size, size)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the payload file's seals (is it a memfd?): %w", err)
	}
	if seals&payloadSeals != payloadSeals {
		return nil, fmt.Errorf("payload file is not sealed (seals %#x, want %#x)", seals, payloadSeals)
	}
	if size == 0 {
		return []byte{}, nil
	}
	// MAP_POPULATE: keep.Run's digest pass reads every page; one fault-in
	// pass is cheaper than a fault per page. Populated read-only, the
	// mapping shares the memfd's pages; a writable private mapping would
	// be populated with write faults, i.e. a copy of every page, which
	// nothing needs (2.6 MB: 1 ms, and the digest pass over fresh copies
	// takes 2–3 ms longer than over the shared pages). Writable after
	// that, a write still gets its private copy of the page.
	b, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		unix.Munmap(b)
		return nil, fmt.Errorf("mprotect: %w", err)
	}
	return b, nil
}
