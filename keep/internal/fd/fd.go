// Package fd is the Keep's file-descriptor table: the objects behind the
// WASI descriptors a workload sees (stdio, null, TCP/TLS listeners and
// streams, and the preopened directories and the files and directories
// opened beneath them, whose objects package vfs defines), built from the
// Enarx.toml [[files]] list with fd number = index. Each entry carries its
// fdflags and, once limited, its WASI rights.
//
// It runs inside the Keep. The host file descriptors it wraps come from the
// untrusted host (see internal/hostio); everything read from them is treated
// as untrusted bytes, and all blocking, non-blocking and readiness semantics
// are implemented here, so the WASI layer above only moves bytes between the
// guest's memory and these objects.
package fd

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
)

// Filetype is a WASI preview1 filetype.
type Filetype uint8

// WASI preview1 filetypes.
const (
	FiletypeUnknown         Filetype = 0
	FiletypeBlockDevice     Filetype = 1
	FiletypeCharacterDevice Filetype = 2
	FiletypeDirectory       Filetype = 3
	FiletypeRegularFile     Filetype = 4
	FiletypeSocketDgram     Filetype = 5
	FiletypeSocketStream    Filetype = 6
	FiletypeSymbolicLink    Filetype = 7
)

// WASI preview1 fdflags.
const (
	FlagAppend   uint16 = 1 << 0
	FlagDsync    uint16 = 1 << 1
	FlagNonblock uint16 = 1 << 2
	FlagRsync    uint16 = 1 << 3
	FlagSync     uint16 = 1 << 4
)

// WASI preview1 rights.
const (
	RightFdDatasync           uint64 = 1 << 0
	RightFdRead               uint64 = 1 << 1
	RightFdSeek               uint64 = 1 << 2
	RightFdFdstatSetFlags     uint64 = 1 << 3
	RightFdSync               uint64 = 1 << 4
	RightFdTell               uint64 = 1 << 5
	RightFdWrite              uint64 = 1 << 6
	RightFdAdvise             uint64 = 1 << 7
	RightFdAllocate           uint64 = 1 << 8
	RightPathCreateDirectory  uint64 = 1 << 9
	RightPathCreateFile       uint64 = 1 << 10
	RightPathLinkSource       uint64 = 1 << 11
	RightPathLinkTarget       uint64 = 1 << 12
	RightPathOpen             uint64 = 1 << 13
	RightFdReaddir            uint64 = 1 << 14
	RightPathReadlink         uint64 = 1 << 15
	RightPathRenameSource     uint64 = 1 << 16
	RightPathRenameTarget     uint64 = 1 << 17
	RightPathFilestatGet      uint64 = 1 << 18
	RightPathFilestatSetSize  uint64 = 1 << 19
	RightPathFilestatSetTimes uint64 = 1 << 20
	RightFdFilestatGet        uint64 = 1 << 21
	RightFdFilestatSetSize    uint64 = 1 << 22
	RightFdFilestatSetTimes   uint64 = 1 << 23
	RightPathSymlink          uint64 = 1 << 24
	RightPathRemoveDirectory  uint64 = 1 << 25
	RightPathUnlinkFile       uint64 = 1 << 26
	RightPollFdReadwrite      uint64 = 1 << 27
	RightSockShutdown         uint64 = 1 << 28
	RightSockAccept           uint64 = 1 << 29

	// RightsAll is every right preview1 defines.
	RightsAll = 1<<30 - 1

	RightsStream   = RightFdRead | RightFdWrite | RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite
	RightsSocket   = RightsStream | RightSockShutdown
	RightsListener = RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite | RightSockAccept

	// RightsDir is what a directory can do (a preopen's base rights):
	// the path calls, listing, its own filestat and times, sync.
	RightsDir = RightPathCreateDirectory | RightPathCreateFile | RightPathLinkSource | RightPathLinkTarget |
		RightPathOpen | RightFdReaddir | RightPathReadlink | RightPathRenameSource | RightPathRenameTarget |
		RightPathFilestatGet | RightPathFilestatSetSize | RightPathFilestatSetTimes | RightFdFilestatGet |
		RightFdFilestatSetTimes | RightPathSymlink | RightPathRemoveDirectory | RightPathUnlinkFile |
		RightFdFdstatSetFlags | RightFdSync | RightFdDatasync
	// RightsFile is what a regular file can do.
	RightsFile = RightFdDatasync | RightFdRead | RightFdSeek | RightFdFdstatSetFlags | RightFdSync |
		RightFdTell | RightFdWrite | RightFdAdvise | RightFdAllocate | RightFdFilestatGet |
		RightFdFilestatSetSize | RightFdFilestatSetTimes | RightPollFdReadwrite
)

// ErrWouldBlock is returned by non-blocking operations that cannot make
// progress now (WASI EAGAIN).
var ErrWouldBlock = syscall.EAGAIN

// Shutdown directions (WASI sdflags).
const (
	ShutRead  = 1
	ShutWrite = 2
)

// File is any open descriptor.
type File interface {
	// Filetype is what fd_fdstat_get reports.
	Filetype() Filetype
	// Rights is the fs_rights_base fd_fdstat_get reports.
	Rights() uint64
	// Close releases the host resource.
	Close() error
}

// Poller is implemented by descriptors that poll_oneoff can wait on.
type Poller interface {
	// PollFD reports whether the descriptor is ready for reading (write =
	// false) or writing now. If not, hostfd >= 0 is a host descriptor to
	// wait on for POLLIN (or POLLOUT if write). Unless the Poller is a
	// HintPoller that says otherwise, hostfd is the descriptor itself (a
	// TCP socket, stdio): its readiness is the descriptor's, and PollFD
	// never reports ready. For a HintPoller, it is only a hint.
	PollFD(write bool) (hostfd int, ready bool)
}

// HintPoller is a Poller whose host descriptor, in one direction or both,
// is only a hint: it becomes ready when the descriptor may have become
// ready (an eventfd set on any change of a channel stream, the TCP socket
// under a TLS stream, which may hold part of a record). The caller waits
// on it, then asks PollFD again, and reports the descriptor only if PollFD
// now says ready; otherwise it waits on the hostfd PollFD returned.
//
// PollFD must consume whatever made the hint ready (clear the eventfd,
// read the ciphertext) before it answers not ready, so that the hint
// becomes ready again only after a later change: a caller never spins.
type HintPoller interface {
	Poller
	// PollHint reports whether PollFD(write)'s host descriptor is a hint.
	PollHint(write bool) bool
}

// Flusher is implemented by streams whose non-blocking writes may leave
// what they took in the Keep, to be sent in the background (a TLS
// socket's send queue). A blocking write made of non-blocking ones
// (the WASI layer's, which a cancelled run can interrupt) waits until
// FlushFD says flushed, so that it returns, as a blocking write does,
// once the transport has taken everything. Unless flushed, hostfd is a
// hint to wait on for POLLOUT, consumed as a HintPoller's is.
type Flusher interface {
	FlushFD() (hostfd int, flushed bool)
}

// WholeWriter is a Stream whose writes complete whatever the guest's
// FlagNonblock (stdio carried by a Conn: a program expects its stdout and
// stderr writes to be whole, and wasmtime writes them whole; a host Stdio
// completes its writes by itself). The WASI layer treats every write to
// it as a blocking one: the stream takes what it can without waiting, and
// the rest is waited for where a cancelled run ends the wait.
type WholeWriter interface {
	WritesWhole() bool
}

// Stream is a byte stream: stdio, null, or a connected (TCP or TLS) socket.
// Streams are used by one goroutine at a time (the workload's).
type Stream interface {
	File
	Poller
	// Read reads up to len(p) bytes. At end of stream it returns 0, io.EOF.
	// If nonblock is set and no data is available it returns 0,
	// ErrWouldBlock; otherwise it waits. A socket's error that ends
	// reading (a reset) is returned by every later read too: the WASI
	// layer drops an error that follows data in the same call (a later
	// iovec's), as readv(2), and relies on the next read to report it.
	Read(p []byte, nonblock bool) (int, error)
	// Write writes p. A non-blocking write may be short or return
	// ErrWouldBlock; a blocking write writes everything or fails.
	Write(p []byte, nonblock bool) (int, error)
}

// Socket is a connected stream socket.
type Socket interface {
	Stream
	// Shutdown shuts down the read and/or write side (ShutRead|ShutWrite).
	Shutdown(how int) error
}

// Peeker is implemented by sockets that support MSG_PEEK: Peek reads like
// Read but leaves the data to be read again.
type Peeker interface {
	Peek(p []byte, nonblock bool) (int, error)
}

// Listener is a listening socket; Accept returns connected sockets.
type Listener interface {
	File
	Poller
	// Accept waits for (or, if nonblock, returns ErrWouldBlock unless
	// there is) a connection. TLS listeners return only connections whose
	// handshake completed (in the background: never in Accept), and a
	// blocking Accept of one returns context.Cause(ctx) when ctx ends.
	Accept(ctx context.Context, nonblock bool) (Socket, error)
}

// Entry is one slot of the table.
type Entry struct {
	File  File
	Flags uint16 // WASI fdflags (NONBLOCK, APPEND)
	// Base and Inheriting are the descriptor's WASI rights when Limited
	// is set (a file or directory opened by path_open, or rights dropped
	// with fd_fdstat_set_rights); otherwise the WASI layer uses the
	// defaults for the kind of file (File.Rights for streams).
	Base, Inheriting uint64
	Limited          bool
}

// Nonblock reports whether the guest set FDFLAGS_NONBLOCK.
func (e *Entry) Nonblock() bool { return e.Flags&FlagNonblock != 0 }

// Table maps WASI descriptor numbers to files. Its methods are safe for
// concurrent use, although a wasip1 module has a single thread.
type Table struct {
	mu      sync.Mutex
	entries []*Entry
}

// MaxFDs bounds the table so a guest accepting connections in a loop runs
// out of descriptors (EMFILE) instead of host memory.
const MaxFDs = 4096

// NewTable returns a table whose fd i is files[i] (nil entries are closed
// slots).
func NewTable(files []File) *Table {
	t := &Table{}
	for _, f := range files {
		if f == nil {
			t.entries = append(t.entries, nil)
			continue
		}
		t.entries = append(t.entries, &Entry{File: f})
	}
	return t
}

// Get returns the entry for fd, or EBADF.
func (t *Table) Get(fd uint32) (*Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if uint64(fd) >= uint64(len(t.entries)) || t.entries[fd] == nil {
		return nil, syscall.EBADF
	}
	return t.entries[fd], nil
}

// Insert adds f at the lowest free descriptor number and returns it, or
// EMFILE when the table is full.
func (t *Table) Insert(f File, flags uint16) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &Entry{File: f, Flags: flags}
	for i, x := range t.entries {
		if x == nil {
			t.entries[i] = e
			return uint32(i), nil
		}
	}
	if len(t.entries) >= MaxFDs {
		return 0, syscall.EMFILE
	}
	t.entries = append(t.entries, e)
	return uint32(len(t.entries) - 1), nil
}

// Full reports whether Insert would fail with EMFILE (no closed slot, and
// MaxFDs descriptors). A call that makes a descriptor asks first, so
// that it fails before it has an effect (creating or truncating a file,
// taking a connection off a listener), as open(2) and accept(2) do.
func (t *Table) Full() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) < MaxFDs {
		return false
	}
	for _, x := range t.entries {
		if x == nil {
			return false
		}
	}
	return true
}

// InsertLimited is Insert for a descriptor with the given rights (see
// Entry.Limited).
func (t *Table) InsertLimited(f File, flags uint16, base, inheriting uint64) (uint32, error) {
	n, err := t.Insert(f, flags)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	e := t.entries[n]
	e.Base, e.Inheriting, e.Limited = base, inheriting, true
	t.mu.Unlock()
	return n, nil
}

// Close closes and removes fd.
func (t *Table) Close(fd uint32) error {
	t.mu.Lock()
	if uint64(fd) >= uint64(len(t.entries)) || t.entries[fd] == nil {
		t.mu.Unlock()
		return syscall.EBADF
	}
	e := t.entries[fd]
	t.entries[fd] = nil
	t.mu.Unlock()
	return e.File.Close()
}

// Renumber moves from onto to, closing whatever to held (fd_renumber).
// As with dup2(2), an error closing it is lost: the move happened, and
// the caller must not be told otherwise.
func (t *Table) Renumber(from, to uint32) error {
	t.mu.Lock()
	n := uint64(len(t.entries))
	if uint64(from) >= n || t.entries[from] == nil || uint64(to) >= n || t.entries[to] == nil {
		t.mu.Unlock()
		return syscall.EBADF
	}
	if from == to {
		t.mu.Unlock()
		return nil
	}
	old := t.entries[to]
	t.entries[to] = t.entries[from]
	t.entries[from] = nil
	t.mu.Unlock()
	_ = old.File.Close()
	return nil
}

// Len is one more than the highest descriptor number ever used.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// CloseAll closes every descriptor; it returns the first error.
func (t *Table) CloseAll() error {
	t.mu.Lock()
	entries := t.entries
	t.entries = nil
	t.mu.Unlock()
	var first error
	for _, e := range entries {
		if e != nil {
			if err := e.File.Close(); err != nil && first == nil && !errors.Is(err, io.EOF) {
				first = err
			}
		}
	}
	return first
}
