package store

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much of an upload is written before the kernel is
// asked to start writing it to disk.
const writebackChunk = 8 << 20

// writebackWriter writes to f and, every writebackChunk bytes, starts
// writeback of what was just written (sync_file_range with
// SYNC_FILE_RANGE_WRITE), so that the disk works while the rest of the
// upload is still arriving and the fsync at the end waits for the tail
// only. It is only a hint and makes nothing durable; Create's fsync does.
type writebackWriter struct {
	f                *os.File
	written, started int64
}

func newWritebackWriter(f *os.File) io.Writer { return &writebackWriter{f: f} }

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.started >= writebackChunk {
		if rc, cerr := w.f.SyscallConn(); cerr == nil {
			rc.Control(func(fd uintptr) {
				// Errors are ignored: the fsync that follows reports
				// real I/O errors.
				unix.SyncFileRange(int(fd), w.started, w.written-w.started, unix.SYNC_FILE_RANGE_WRITE)
			})
		}
		w.started = w.written
	}
	return n, err
}
