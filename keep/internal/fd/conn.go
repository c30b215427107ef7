package fd

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is a connected byte stream that is not a host descriptor: a stream
// of a microVM Keep's channel to its host (package backend/microvm/internal/channel). Its
// bytes come from the untrusted host like those of a host socket.
type Conn interface {
	net.Conn
	// TryRead reads what is available without waiting: ErrWouldBlock if
	// nothing is, io.EOF at the end of the stream.
	TryRead(p []byte) (int, error)
	// TryWrite writes what can be sent now: ErrWouldBlock if nothing.
	TryWrite(p []byte) (int, error)
	// Peek is TryRead without consuming.
	Peek(p []byte) (int, error)
	// Readable and Writable report whether a read or a write would make
	// progress (or fail) without waiting.
	Readable() bool
	Writable() bool
	CloseRead() error
	CloseWrite() error
	// SetNotify sets a function called after any change of readiness. It
	// must not block.
	SetNotify(func())
}

// Acceptor is the Keep's side of a listening entry whose connections are
// Conns.
type Acceptor interface {
	// Accept waits for a connection.
	Accept() (Conn, error)
	// TryAccept returns a pending connection or ErrWouldBlock.
	TryAccept() (Conn, error)
	// Pending reports whether TryAccept would return without
	// ErrWouldBlock.
	Pending() bool
	// SetNotify sets a function called after any change of Pending.
	SetNotify(func())
	Close() error
}

// readiness turns a Conn's readiness into two level-triggered eventfds
// (one per direction), so poll_oneoff can wait on channel streams and host
// descriptors in one ppoll: rfd for POLLIN, wfd for POLLOUT (a write
// hint, see clearWriteHint). The notify function only ever sets them;
// PollFD clears one before looking again at the real state, so a change
// is never missed and a stale wakeup costs one more look.
type readiness struct {
	once     sync.Once
	rfd, wfd int
}

func newReadiness() (*readiness, error) {
	r, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w, err := newWriteHint()
	if err != nil {
		unix.Close(r)
		return nil, err
	}
	return &readiness{rfd: r, wfd: w}, nil
}

// eventfdMax is the largest value an eventfd's counter holds: the
// eventfd is ready for POLLOUT unless its counter is there.
const eventfdMax = 1<<64 - 2

// newWriteHint returns an eventfd for poll_oneoff to wait on for POLLOUT,
// clear (see clearWriteHint).
func newWriteHint() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, err
	}
	clearWriteHint(fd)
	return fd, nil
}

// clearWriteHint makes a write hint not ready for POLLOUT: its counter
// goes to the maximum (an eventfd set as a read hint is always ready for
// POLLOUT, so poll_oneoff would never sleep on it).
func clearWriteHint(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
	binary.NativeEndian.PutUint64(b[:], eventfdMax)
	unix.Write(fd, b[:])
}

// fireWriteHint makes a write hint ready for POLLOUT (its counter drops to
// 0). A fire while clearWriteHint runs may be lost; the caller of clear
// looks at the real state after it.
func fireWriteHint(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}

var one = []byte{1, 0, 0, 0, 0, 0, 0, 0}

// fire marks both directions as possibly ready: a Conn's notify does not
// say which changed, so a wakeup of either eventfd is only a hint (see
// HintPoller).
func (r *readiness) fire() {
	unix.Write(r.rfd, one)
	fireWriteHint(r.wfd)
}

// poll implements Poller.PollFD given the real state.
func (r *readiness) poll(write bool, ready func() bool) (int, bool) {
	if ready() {
		return -1, true
	}
	// Clear, then look again.
	fd := r.rfd
	if write {
		fd = r.wfd
		clearWriteHint(fd)
	} else {
		var b [8]byte
		unix.Read(fd, b[:])
	}
	if ready() {
		return -1, true
	}
	return fd, false
}

func (r *readiness) close() {
	r.once.Do(func() {
		unix.Close(r.rfd)
		unix.Close(r.wfd)
	})
}

// connStream is the part of ConnStdio and ConnSocket that reads and
// writes.
type connStream struct {
	c     Conn
	ready *readiness
}

func newConnStream(c Conn) (connStream, error) {
	r, err := newReadiness()
	if err != nil {
		c.Close()
		return connStream{}, err
	}
	c.SetNotify(r.fire)
	return connStream{c: c, ready: r}, nil
}

func (s connStream) read(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if nonblock {
		return s.c.TryRead(p)
	}
	return s.c.Read(p)
}

func (s connStream) PollFD(write bool) (int, bool) {
	if write {
		return s.ready.poll(true, s.c.Writable)
	}
	return s.ready.poll(false, s.c.Readable)
}

// PollHint implements HintPoller: the eventfds are hints.
func (s connStream) PollHint(bool) bool { return true }

func (s connStream) Close() error {
	s.c.SetNotify(nil)
	err := s.c.Close()
	s.ready.close()
	return err
}

// ConnStdio is a stdin, stdout or stderr entry carried by a Conn. Its
// reads are non-blocking when asked, as a ConnSocket's; a guest's write
// completes whatever its FlagNonblock (WritesWhole), the WASI layer
// waiting for the stream's window as long as the run is not cancelled.
type ConnStdio struct {
	connStream
	write bool
	ftype Filetype
}

// NewConnStdio wraps c as a read-only (stdin) or write-only stream; ftype
// is the filetype of the host's side, as fd_fdstat_get reports it.
func NewConnStdio(c Conn, write bool, ftype Filetype) (*ConnStdio, error) {
	cs, err := newConnStream(c)
	if err != nil {
		return nil, err
	}
	return &ConnStdio{connStream: cs, write: write, ftype: ftype}, nil
}

// Filetype implements File.
func (s *ConnStdio) Filetype() Filetype { return s.ftype }

// Rights implements File.
func (s *ConnStdio) Rights() uint64 {
	if s.write {
		return RightFdWrite | RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite
	}
	return RightFdRead | RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite
}

// Read implements Stream.
func (s *ConnStdio) Read(p []byte, nonblock bool) (int, error) {
	if s.write {
		return 0, syscall.EBADF
	}
	return s.read(p, nonblock)
}

// WritesWhole implements WholeWriter: a guest's write to stdout or
// stderr completes, as with wasmtime and with a host Stdio, whatever its
// FlagNonblock (Go's wasip1 runtime sets it on stdio).
func (s *ConnStdio) WritesWhole() bool { return s.write }

// Write implements Stream. A non-blocking write takes what the host's
// window allows now (ErrWouldBlock if nothing), as a ConnSocket's: the
// WASI layer makes the guest's write whole, waiting for the stream where
// a cancelled run can end the wait (a blocking Write would wait in the
// host for as long as the host does not read).
func (s *ConnStdio) Write(p []byte, nonblock bool) (int, error) {
	if !s.write {
		return 0, syscall.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if nonblock {
		return s.c.TryWrite(p)
	}
	return s.c.Write(p)
}

// ConnSocket is a plain TCP connection carried by a Conn.
type ConnSocket struct{ connStream }

// NewConnSocket wraps c.
func NewConnSocket(c Conn) (*ConnSocket, error) {
	cs, err := newConnStream(c)
	if err != nil {
		return nil, err
	}
	return &ConnSocket{cs}, nil
}

// Filetype implements File.
func (s *ConnSocket) Filetype() Filetype { return FiletypeSocketStream }

// Rights implements File.
func (s *ConnSocket) Rights() uint64 { return RightsSocket }

// Read implements Stream.
func (s *ConnSocket) Read(p []byte, nonblock bool) (int, error) { return s.read(p, nonblock) }

// Write implements Stream.
func (s *ConnSocket) Write(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if nonblock {
		return s.c.TryWrite(p)
	}
	return s.c.Write(p)
}

// Peek implements Peeker.
func (s *ConnSocket) Peek(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := s.c.Peek(p)
		if !errors.Is(err, ErrWouldBlock) || nonblock {
			return n, err
		}
		if err := s.waitReadable(); err != nil {
			return 0, err
		}
	}
}

// waitReadable blocks until the Conn is readable.
func (s *ConnSocket) waitReadable() error {
	for {
		fd, ok := s.PollFD(false)
		if ok {
			return nil
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Ppoll(pfd, nil, nil); err != nil && err != unix.EINTR {
			return err
		}
	}
}

// Shutdown implements Socket.
func (s *ConnSocket) Shutdown(how int) error { return shutdownHalves(s.c, how) }

// nbChan is a Conn under a TLSSocket.
type nbChan struct {
	Conn
	ready    *readiness
	nonblock bool
}

func (c *nbChan) Read(p []byte) (int, error) {
	if !c.nonblock {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.TryRead(p)
	if errors.Is(err, ErrWouldBlock) {
		return 0, wouldBlock{}
	}
	return n, err
}

func (c *nbChan) setNonblock(b bool)             { c.nonblock = b }
func (c *nbChan) tryWrite(p []byte) (int, error) { return c.Conn.TryWrite(p) }
func (c *nbChan) pollHint() bool                 { return true }

func (c *nbChan) pollFD(write bool) (int, bool) {
	if write {
		return c.ready.poll(true, c.Conn.Writable)
	}
	return c.ready.poll(false, c.Conn.Readable)
}

func (c *nbChan) Close() error {
	c.Conn.SetNotify(nil)
	err := c.Conn.Close()
	c.ready.close()
	return err
}

func newNBChan(c Conn) (*nbChan, error) {
	r, err := newReadiness()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetNotify(r.fire)
	return &nbChan{Conn: c, ready: r}, nil
}

// NewConnTLSServer runs a TLS 1.3 server handshake over c (bounded by
// HandshakeTimeout).
func NewConnTLSServer(ctx context.Context, c Conn, cfg *tls.Config) (*TLSSocket, error) {
	raw, err := newNBChan(c)
	if err != nil {
		return nil, err
	}
	return newTLS(ctx, raw, cfg, true)
}

// NewConnTLSClient runs a TLS 1.3 client handshake over c.
func NewConnTLSClient(ctx context.Context, c Conn, cfg *tls.Config) (*TLSSocket, error) {
	raw, err := newNBChan(c)
	if err != nil {
		return nil, err
	}
	return newTLS(ctx, raw, cfg, false)
}

// ConnListener is a listening entry whose connections arrive through an
// Acceptor. With a TLS config, each completes a TLS 1.3 handshake in the
// background (see handshaker) before sock_accept returns it, as with a
// TCPListener.
type ConnListener struct {
	// OnHandshakeError is TCPListener.OnHandshakeError.
	OnHandshakeError func(remote net.Addr, err error)

	ctx   context.Context
	a     Acceptor
	tls   *tls.Config
	ready *readiness // without tls
	hs    *handshaker
	// kick is signalled by the Acceptor's notify (with tls): the accept
	// loop waits on it for a connection.
	kick chan struct{}
}

// NewConnListener wraps a. tlsConfig nil means plain TCP.
func NewConnListener(ctx context.Context, a Acceptor, tlsConfig *tls.Config) (*ConnListener, error) {
	l := &ConnListener{ctx: ctx, a: a, tls: tlsConfig}
	if tlsConfig != nil {
		hs, err := newHandshaker(ctx)
		if err != nil {
			a.Close()
			return nil, err
		}
		l.hs, l.kick = hs, make(chan struct{}, 1)
		hs.loop = l.acceptLoop
		a.SetNotify(func() {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		})
		return l, nil
	}
	r, err := newReadiness()
	if err != nil {
		a.Close()
		return nil, err
	}
	a.SetNotify(r.fire)
	l.ready = r
	return l, nil
}

// Filetype implements File.
func (l *ConnListener) Filetype() Filetype { return FiletypeSocketStream }

// Rights implements File.
func (l *ConnListener) Rights() uint64 { return RightsListener }

// Accept implements Listener.
func (l *ConnListener) Accept(ctx context.Context, nonblock bool) (Socket, error) {
	if l.hs != nil {
		l.hs.start(l.OnHandshakeError)
		return l.hs.accept(ctx, nonblock)
	}
	var c Conn
	var err error
	if nonblock {
		c, err = l.a.TryAccept()
	} else {
		c, err = l.a.Accept()
	}
	if err != nil {
		return nil, err
	}
	return NewConnSocket(c)
}

// acceptLoop is a TLS listener's accept loop (see handshaker).
func (l *ConnListener) acceptLoop() {
	h := l.hs
	for h.slot() {
		c, err := l.a.TryAccept()
		for errors.Is(err, ErrWouldBlock) {
			select {
			case <-l.kick:
			case <-h.ctx.Done():
				h.release()
				return
			}
			c, err = l.a.TryAccept()
		}
		if err != nil {
			h.release()
			if h.ctx.Err() == nil {
				h.fail(err)
			}
			return
		}
		h.handshake(c.RemoteAddr(), func(ctx context.Context) (*TLSSocket, error) {
			return NewConnTLSServer(ctx, c, l.tls)
		})
	}
}

// PollFD implements Poller.
func (l *ConnListener) PollFD(write bool) (int, bool) {
	if write {
		return -1, true
	}
	if l.hs != nil {
		l.hs.start(l.OnHandshakeError)
		return l.hs.pollFD()
	}
	return l.ready.poll(false, l.a.Pending)
}

// PollHint implements HintPoller: the eventfd is a hint.
func (l *ConnListener) PollHint(bool) bool { return true }

// Close implements File: with tls, it also stops the handshakes under way
// and closes the connections taken from the Acceptor but not by the
// guest.
func (l *ConnListener) Close() error {
	l.a.SetNotify(nil)
	if l.hs != nil {
		l.hs.stop()
		err := l.a.Close()
		l.hs.wait()
		return err
	}
	err := l.a.Close()
	l.ready.close()
	return err
}
