// Package kmodcomp decompresses xz- and zstd-compressed kernel modules
// (.ko.xz, .ko.zst) for package microvm/image, which reads a module's
// .modinfo when it builds a Keep image. It is apart from image so that
// programs that only find and check images, enarx among them, do not link
// the two decompressors and run their initialisers at every start.
//
// What it trusts: nothing; both readers bound what they produce
// (image caps every module at its size limit, and zstd's decoder memory is
// capped here).
package kmodcomp

import (
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxDecoderMemory caps the zstd decoder's window (image's limit on a
// decompressed module).
const maxDecoderMemory = 256 << 20

// XZ decompresses an xz stream.
func XZ(r io.Reader) (io.Reader, error) { return xz.NewReader(r) }

// Zstd decompresses a zstd stream with one decoder goroutine. The reader
// it returns is an io.Closer, which releases the decoder.
func Zstd(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoderMemory))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

// Register hands both decompressors to register, which is
// image.RegisterDecompressor (taken as an argument so that image's own
// tests can use this package without an import cycle).
func Register(register func(ext string, d func(io.Reader) (io.Reader, error))) {
	register(".ko.xz", XZ)
	register(".ko.zst", Zstd)
}
