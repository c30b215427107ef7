package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A terminal as a Keep's stdin. The Keep runs in a session of its own
// (it must not share the caller's controlling terminal), so a terminal
// it got would not be its controlling one, and job control would not
// apply to it: a Keep left in the background (`enarx run app.wasm &`)
// would go on reading the keystrokes the user types to the shell or to
// the foreground program, where a background process of the shell's
// session that reads the terminal is stopped (SIGTTIN, "Stopped (tty
// input)"). So a [[files]] stdin entry whose host file is a terminal
// reaches the Keep as the read end of a pipe, and the host relays the
// terminal's input into it (ttyRelay). The host is in the user's job
// control: in the background its read of the terminal stops it as it
// stops `cat &` (enarx leaves SIGTTIN at its default action: os/signal
// changes it only for a Notify that names it), and the Keep, which
// does not depend on the host running, waits on the pipe meanwhile.
// Any other stdin (a file, pipe, socket, /dev/null) still reaches the
// Keep directly (stdio_linux.go).

// ttyRelayBuf bounds one read of the terminal (a canonical-mode line
// holds at most 4096 bytes).
const ttyRelayBuf = 16 << 10

// ttyRelay copies what the reads of a terminal return to a pipe whose
// read end the Keep has, each read's bytes as soon as it returns, until
// the terminal's end of file (^D at the start of a line, in canonical
// mode), its hang-up or a read error (EIO: a background read with
// SIGTTIN ignored, or from an orphaned process group), until the Keep's
// end of the pipe is closed, or until stop. It then closes the pipe's
// write end: the Keep reads end of file.
type ttyRelay struct {
	// in is the terminal: an open file description of the host's own
	// (non-blocking: its reads never wait, and the flag is no one
	// else's), or, where the terminal cannot be opened again, a
	// duplicate of the host's descriptor (its description, and so its
	// flags, are shared with the shell: they are left alone).
	in int
	// own: in is a description of the relay's own.
	own bool
	w   int // the pipe's write end, non-blocking
	// wake is an eventfd that stop makes readable. The relay and stop
	// both use it; the last to be done with it closes it (wakeUsers).
	wake      int
	wakeUsers atomic.Int32
	log       *slog.Logger
	done      chan struct{} // closed once the relay has ended
	started   bool
	stopOnce  sync.Once
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return tty
}

// newTTYRelay prepares a relay of terminal f and returns it with the
// pipe's read end for the Keep. It does not read the terminal until
// start.
func newTTYRelay(f *os.File, log *slog.Logger) (_ *ttyRelay, keepEnd *os.File, err error) {
	r := &ttyRelay{in: -1, w: -1, wake: -1, log: log, done: make(chan struct{})}
	defer func() {
		if err != nil {
			r.closeFDs()
		}
	}()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	if cerr := rc.Control(func(fd uintptr) {
		if r.in, err = reopenRaw(int(fd), unix.O_RDONLY); err == nil && r.in >= 0 {
			r.own = true // reopenRaw leaves it non-blocking
			return
		}
		// Not to be opened again (a pseudo-terminal master, /dev/tty, a
		// terminal the user may not open): the host's description.
		r.in, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil {
		return nil, nil, cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening the terminal: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("creating the pipe: %w", err)
	}
	r.w, keepEnd = p[1], os.NewFile(uintptr(p[0]), f.Name()+"-relay")
	if err := unix.SetNonblock(r.w, true); err != nil {
		keepEnd.Close()
		return nil, nil, fmt.Errorf("creating the pipe: %w", err)
	}
	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		keepEnd.Close()
		return nil, nil, fmt.Errorf("creating the relay's eventfd: %w", err)
	}
	return r, keepEnd, nil
}

// start starts relaying, once the Keep has started: input typed until
// then stays in the terminal if it does not.
func (r *ttyRelay) start() {
	r.started = true
	r.wakeUsers.Store(2)
	go r.run()
}

// stop ends the relay (the Keep has ended) and, unless it is in a read
// of a blocking description it shares with the shell (a terminal it
// could not open again), which it leaves at that read's return, waits
// for it to have ended and closed its descriptors.
func (r *ttyRelay) stop() {
	r.stopOnce.Do(func() {
		if !r.started {
			r.closeFDs()
			close(r.done)
			return
		}
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(r.wake, one[:])
		r.releaseWake()
		if r.own {
			<-r.done
		}
	})
}

// run is the relay.
func (r *ttyRelay) run() {
	defer close(r.done)
	defer r.releaseWake()
	defer r.closeIO()
	buf := make([]byte, ttyRelayBuf)
	for {
		if !r.await(r.in, unix.POLLIN) {
			return
		}
		n, err := unix.Read(r.in, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // another reader had it, or a stop signal
		}
		if err != nil || n <= 0 {
			if err != nil && r.log != nil {
				r.log.Debug("sandbox: the terminal's relay to the Keep's stdin ends", "err", err)
			}
			return
		}
		for p := buf[:n]; len(p) > 0; {
			m, err := unix.Write(r.w, p)
			switch {
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				if !r.await(r.w, unix.POLLOUT) {
					return
				}
			case err != nil:
				return // EPIPE: the Keep's end is closed
			default:
				p = p[m:]
			}
		}
	}
}

// await waits until fd has one of events, an error or a hang-up, and
// reports true, or false once stop was called.
func (r *ttyRelay) await(fd int, events int16) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(r.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(pfd, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pfd[1].Revents != 0 {
			return false
		}
		if pfd[0].Revents != 0 {
			return true
		}
	}
}

// closeFDs closes the relay's descriptors (before start, or for good).
func (r *ttyRelay) closeFDs() {
	r.closeIO()
	if r.wake >= 0 {
		unix.Close(r.wake)
		r.wake = -1
	}
}

// closeIO closes the terminal and the pipe's write end: the Keep reads
// end of file.
func (r *ttyRelay) closeIO() {
	for _, fd := range []*int{&r.in, &r.w} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// releaseWake is the relay's or stop's last use of wake.
func (r *ttyRelay) releaseWake() {
	if r.wakeUsers.Add(-1) == 0 {
		unix.Close(r.wake)
	}
}

// relayHook, if set (tests), is called with each relay as it starts.
var relayHook func(*ttyRelay)
