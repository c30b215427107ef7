package testutil

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"testing"
)

// DeterministicBytes returns n reproducible pseudo-random bytes for label:
// SHA-256 in counter mode, block i = SHA-256(label || uint64 big-endian i).
// Test vectors describe generated inputs by label and size, so any tool can
// regenerate them.
func DeterministicBytes(label string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		h := sha256.Sum256(append([]byte(label), ctr[:]...))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// ReadGzipPinned reads a gzip-compressed fixture and fails the test unless
// the uncompressed bytes have the given SHA-256 (hex).
func ReadGzipPinned(t testing.TB, path, sha256Hex string) []byte {
	t.Helper()
	b, err := readGzip(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sha256Hex {
		t.Fatalf("%s: SHA-256 %x, want %s", path, h, sha256Hex)
	}
	return b
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(z)
}
