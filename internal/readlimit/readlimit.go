// Package readlimit reads a whole file whose size someone else chooses —
// a cache on the host's disk, a token file, collateral — up to a bound:
// a larger file, or an endless one (a link to /dev/zero), costs at most
// limit+1 bytes of memory and is an error, never an allocation of the
// size it claims.
//
// It trusts nothing about the file: not its reported size (it reads, it
// does not trust the size it stats), nor that it ends, nor that it is a
// regular file at all.
package readlimit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrTooLarge is wrapped by File's error for a file of more than limit
// bytes.
var ErrTooLarge = errors.New("larger than the limit")

// ErrNotRegular is wrapped by File's error for a name that is not a
// regular file (after symbolic links): a FIFO, a device, a socket, a
// directory.
var ErrNotRegular = errors.New("not a regular file")

// File reads the regular file name if it has at most limit bytes. It
// opens without blocking, so a FIFO planted where a file is expected (one
// no writer ever opens) is an error, not a wait that never ends.
func File(name string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s: %w", name, kind(st.Mode()), ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s has more than %d bytes: %w", name, limit, ErrTooLarge)
	}
	return b, nil
}

// kind names a non-regular file mode for an error.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
