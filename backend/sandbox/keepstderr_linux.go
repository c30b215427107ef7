package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The Keep process's own stderr (its diagnostics: the Keep's logs, not
// the workload's stdio [[files]] entries). A tty, pipe or FIFO reaches
// the Keep as a new open file description (stdio_linux.go). Anything else
// — a regular file (`enarx run app.wasm 2>>enarx.log`, a systemd
// `append:` log), a socket (a journal stream) — would be the host's own
// description, the Keep's to change while it runs: one that escaped wasm
// could clear O_APPEND (fcntl F_SETFL is allowed) and pwrite64 over what
// others wrote to the log, or, with directories, ftruncate it. So the
// Keep gets the write end of a pipe instead, and the host copies what it
// writes to its stderr (stderrCopy). /dev/null is still shared: there is
// nothing in it to overwrite, and a pipe would cost a run that discards
// the Keep's diagnostics the copy and stopping the Keep at its end.

// keepStderr is the file the Keep process gets as its stderr for the
// host's f: a description of its own (tty, pipe, FIFO), /dev/null shared,
// or the write end of a pipe that k.stderr copies to f.
func (k *keepFDs) keepStderr(f *os.File) (*os.File, error) {
	if nf, err := ownDescriptionAs(f, unix.O_WRONLY); err == nil && nf != nil {
		k.closers = append(k.closers, nf)
		return nf, nil
	}
	if isDevNull(f) {
		if s, err := saveFlags(f); err == nil {
			k.shared = append(k.shared, s)
		}
		return f, nil
	}
	c, w, err := newStderrCopy(f)
	if err != nil {
		return nil, fmt.Errorf("sandbox: creating the pipe for the Keep's diagnostics (are file descriptors exhausted?): %w", err)
	}
	k.stderr, k.stderrW = c, w
	return w, nil
}

// isDevNull reports whether f is the null device.
func isDevNull(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	null := false
	_ = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		null = unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3)
	})
	return null
}

// stderrCopyBuf is the copy's only buffer: it bounds one read of the
// Keep's stderr pipe and a line held back for its end.
const stderrCopyBuf = 32 << 10

// stderrCopy copies what a Keep writes to its stderr pipe to the host's
// stderr, in order, from its own goroutine (run) until the pipe's write
// end is closed — the Keep has exited or been killed (the host closes its
// own copy once the Keep has started). Each write to the host's stderr
// ends with a line's end, as the Keep's own writes of its log lines do,
// so that the host's own log lines do not land inside one of them: a
// line's start waits in the buffer for its end, unless it fills the
// buffer, or the copy ends. A Keep that writes faster than the host's
// stderr takes blocks on its full pipe. A Keep that answered and waits to
// be ended outlives the run (keepend_linux.go): flush copies what it
// wrote once it is stopped and cannot write any more.
type stderrCopy struct {
	// r is the pipe's read end, non-blocking, in Go's poller; run closes
	// it when done.
	r   *os.File
	dst io.Writer
	// buf[:n] is read and not yet written (run's alone).
	buf []byte
	n   int
	// flushReq carries a flush request (the channel to close once done)
	// to run; flush then sets r's read deadline to wake run.
	flushReq chan chan struct{}
	done     chan struct{} // closed once run has ended
}

// newStderrCopy makes the pipe and starts copying its read end to dst;
// keepEnd is its write end (blocking) for the Keep, which the host must
// close once the Keep has started.
func newStderrCopy(dst io.Writer) (_ *stderrCopy, keepEnd *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, err
	}
	c := &stderrCopy{
		r:        os.NewFile(uintptr(p[0]), "keep-stderr"), // non-blocking: in the poller
		dst:      dst,
		buf:      make([]byte, stderrCopyBuf),
		flushReq: make(chan chan struct{}, 1),
		done:     make(chan struct{}),
	}
	go c.run()
	return c, os.NewFile(uintptr(p[1]), "keep-stderr-child"), nil
}

func (c *stderrCopy) run() {
	defer close(c.done)
	defer c.r.Close()
	for {
		m, err := c.r.Read(c.buf[c.n:])
		c.took(m)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Only flush sets a deadline, after its request.
			ack := <-c.flushReq
			eof := c.drain()
			c.rest()
			_ = c.r.SetReadDeadline(time.Time{})
			close(ack)
			if eof {
				return
			}
		default: // io.EOF: the Keep's end is closed
			c.rest()
			return
		}
	}
}

// took writes the whole lines of buf[:n] once m more bytes were read into
// it, or all of it once it is full, and keeps the rest.
func (c *stderrCopy) took(m int) {
	if m <= 0 {
		return
	}
	c.n += m
	if i := bytes.LastIndexByte(c.buf[:c.n], '\n'); i >= 0 {
		c.write(c.buf[:i+1])
		c.n = copy(c.buf, c.buf[i+1:c.n])
	} else if c.n == len(c.buf) {
		c.rest()
	}
}

// rest writes what is held back.
func (c *stderrCopy) rest() {
	if c.n > 0 {
		c.write(c.buf[:c.n])
		c.n = 0
	}
}

// write copies p to the host's stderr. Once a write has failed the rest
// is discarded: the Keep must not block on a pipe no one reads.
func (c *stderrCopy) write(p []byte) {
	if _, err := c.dst.Write(p); err != nil {
		c.dst = io.Discard
	}
}

// drain copies what the pipe holds until it is empty (false) or closed
// (true). The deadline that woke run would fail r.Read: it reads the
// descriptor itself.
func (c *stderrCopy) drain() (eof bool) {
	rc, err := c.r.SyscallConn()
	if err != nil {
		return true
	}
	for {
		var m int
		var rerr error
		if err := rc.Control(func(fd uintptr) {
			for {
				m, rerr = unix.Read(int(fd), c.buf[c.n:])
				if rerr != unix.EINTR {
					return
				}
			}
		}); err != nil {
			return true
		}
		switch {
		case m > 0:
			c.took(m)
		case rerr == nil:
			return true // end of file
		default:
			return rerr != unix.EAGAIN
		}
	}
}

// flush returns once everything the Keep wrote so far is copied: for a
// Keep that cannot write any more (stopped or exited: keepend_linux.go),
// everything it wrote. run goes on until the pipe is closed, which for a
// stopped Keep is after its kill, with nothing more to copy (unless
// someone continued it in between, as endKeep's second pass allows for).
// A host stderr that takes nothing blocks flush, as it would block the
// host's own next message.
func (c *stderrCopy) flush() {
	select {
	case <-c.done:
		return
	default:
	}
	ack := make(chan struct{})
	c.flushReq <- ack // empty: each flush waits for its ack, or for run's end
	_ = c.r.SetReadDeadline(time.Now())
	select {
	case <-ack:
	case <-c.done:
	}
}
