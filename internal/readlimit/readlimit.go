// Package readlimit reads a whole file whose size someone else chooses —
// a cache on the host's disk, a token file, collateral — up to a bound:
// a larger file, or an endless one (a link to /dev/zero), costs at most
// limit+1 bytes of memory and is an error, never an allocation of the
// size it claims.
//
// It trusts nothing about the file: not its reported size (it reads, it
// does not stat), nor that it ends.
package readlimit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is wrapped by File's error for a file of more than limit
// bytes.
var ErrTooLarge = errors.New("larger than the limit")

// File reads the file name if it has at most limit bytes.
func File(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s has more than %d bytes: %w", name, limit, ErrTooLarge)
	}
	return b, nil
}
