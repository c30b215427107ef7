package fd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HandshakeTimeout bounds a TLS handshake: one a TLS listener runs in the
// background for an accepted connection (a silent peer holds one of its
// MaxPendingHandshakes slots no longer), or one at start-up for connect.
const HandshakeTimeout = 30 * time.Second

// TCPSocket is a connected TCP stream.
type TCPSocket struct {
	c  *net.TCPConn
	rc syscall.RawConn
	fd int
	// readErr is the error that ended reading (a reset): the kernel
	// reports it to one read only, then end-of-file, and a read that
	// follows data in the same fd_read or sock_recv (a later iovec) has
	// its error dropped, as readv(2)'s. Kept, it is reported to the next
	// read too, instead of a clean end.
	readErr error
}

// NewTCPSocket wraps c. The socket is registered with Go's poller; blocking
// operations use it, non-blocking ones make exactly one system call.
func NewTCPSocket(c *net.TCPConn) (*TCPSocket, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, err := rawFD(c)
	if err != nil {
		return nil, err
	}
	return &TCPSocket{c: c, rc: rc, fd: fd}, nil
}

// Filetype implements File.
func (s *TCPSocket) Filetype() Filetype { return FiletypeSocketStream }

// Rights implements File.
func (s *TCPSocket) Rights() uint64 { return RightsSocket }

// Read implements Stream. Once a read failed (a reset), every later
// read fails the same way.
func (s *TCPSocket) Read(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.readErr != nil {
		return 0, s.readErr
	}
	if nonblock {
		n, err := rawRead(s.rc, p)
		return n, s.keepReadErr(err)
	}
	n, err := s.c.Read(p)
	if n > 0 {
		return n, nil
	}
	return 0, s.keepReadErr(err)
}

// keepReadErr keeps err in readErr if it ends reading for good: not the
// end of the stream, "would block" or an interrupted call.
func (s *TCPSocket) keepReadErr(err error) error {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EAGAIN) &&
		!errors.Is(err, syscall.EINTR) && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.readErr = err
	}
	return err
}

// Write implements Stream.
func (s *TCPSocket) Write(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if nonblock {
		return rawWrite(s.rc, p)
	}
	return s.c.Write(p)
}

// Peek implements Peeker with recv(MSG_PEEK). An error it reports (which
// the kernel reports once, peeking or not) is kept for later reads.
func (s *TCPSocket) Peek(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.readErr != nil {
		return 0, s.readErr
	}
	var n int
	var rerr error
	// The descriptor is non-blocking (Go's poller); returning false makes
	// RawConn.Read wait for readiness and call again.
	if err := s.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), p, unix.MSG_PEEK)
		return nonblock || rerr != unix.EAGAIN
	}); err != nil {
		return 0, s.keepReadErr(err)
	}
	if rerr != nil {
		return 0, s.keepReadErr(rerr)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// rawWrite makes one write(2) on a socket registered with Go's poller:
// ErrWouldBlock if it takes nothing.
func rawWrite(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), p)
		return true
	}); err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}

// rawRead makes one read(2) on a socket registered with Go's poller.
func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), p)
		return true
	}); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// PollFD implements Poller.
func (s *TCPSocket) PollFD(bool) (int, bool) { return s.fd, false }

// Shutdown implements Socket.
func (s *TCPSocket) Shutdown(how int) error { return shutdown(s.c, how) }

func shutdown(c *net.TCPConn, how int) error { return shutdownHalves(c, how) }

// shutdownHalves closes the read and/or write half of c.
func shutdownHalves(c interface {
	CloseRead() error
	CloseWrite() error
}, how int) error {
	if how&ShutRead != 0 {
		if err := c.CloseRead(); err != nil {
			return err
		}
	}
	if how&ShutWrite != 0 {
		if err := c.CloseWrite(); err != nil {
			return err
		}
	}
	return nil
}

// Close implements File.
func (s *TCPSocket) Close() error { return s.c.Close() }

// maxRecord is the largest TLS record plaintext. TLSSocket always reads
// whole records into its own buffer so no plaintext is ever hidden inside
// crypto/tls where poll_oneoff could not see it.
const maxRecord = 16384

// TLSSocket is a TLS 1.3 stream over TCP or over a channel Conn. Reads can
// be non-blocking: the connection underneath returns a temporary "would
// block" error that crypto/tls passes up without poisoning the connection.
// Writes can be non-blocking too: the ciphertext of records the transport
// did not take whole is sent in the background (see sendQueue), and
// further non-blocking writes return EAGAIN until it is.
type TLSSocket struct {
	conn    *tls.Conn
	raw     transport
	w       *sendQueue // raw as crypto/tls sees it
	buf     []byte
	stash   []byte
	pending error
	// readShut is set once the guest shut reading: the transport's end
	// is then its own doing, not a cut.
	readShut bool
	// writeShut is set once the guest shut writing: writes fail with
	// EPIPE, close_notify is on its way (see Shutdown).
	writeShut bool
}

// errTruncated ends a TLS stream whose transport ended without the
// peer's close_notify. crypto/tls reports that as io.EOF when it falls
// between records ("popular web sites" close so), but the host carries
// the ciphertext and sees where records end: it could cut an upload or
// a reply short and the guest would take it for the whole. Upstream's
// rustls reports it as an error too (UnexpectedEof).
var errTruncated = fmt.Errorf("the TLS peer's stream ended without close_notify (it may have been cut short): %w", syscall.ECONNRESET)

// transport is the connection under a TLSSocket: a TCP socket (nbConn) or
// a channel stream (nbChan).
type transport interface {
	net.Conn
	// setNonblock makes the next reads return wouldBlock instead of
	// waiting.
	setNonblock(bool)
	// tryWrite writes what can be sent now: ErrWouldBlock if nothing.
	tryWrite(p []byte) (int, error)
	CloseRead() error
	CloseWrite() error
	// pollFD is Poller.PollFD for the ciphertext.
	pollFD(write bool) (int, bool)
	// pollHint is HintPoller.PollHint for the ciphertext (the same in
	// both directions).
	pollHint() bool
}

// nbConn is a TCP connection under a TLSSocket.
type nbConn struct {
	*net.TCPConn
	rc       syscall.RawConn
	fd       int
	nonblock bool
}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "operation would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func (c *nbConn) Read(p []byte) (int, error) {
	if !c.nonblock {
		return c.TCPConn.Read(p)
	}
	n, err := rawRead(c.rc, p)
	if errors.Is(err, syscall.EAGAIN) {
		return 0, wouldBlock{}
	}
	return n, err
}

func (c *nbConn) tryWrite(p []byte) (int, error) { return rawWrite(c.rc, p) }
func (c *nbConn) setNonblock(b bool)             { c.nonblock = b }
func (c *nbConn) pollFD(bool) (int, bool)        { return c.fd, false }
func (c *nbConn) pollHint() bool                 { return false }

// newNBConn prepares c for use under crypto/tls.
func newNBConn(c *net.TCPConn) (*nbConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, err := rawFD(c)
	if err != nil {
		return nil, err
	}
	return &nbConn{TCPConn: c, rc: rc, fd: fd}, nil
}

// NewTLSServer runs a server handshake on c (blocking, bounded by
// HandshakeTimeout). TLS 1.3 is enforced whatever cfg says.
func NewTLSServer(ctx context.Context, c *net.TCPConn, cfg *tls.Config) (*TLSSocket, error) {
	raw, err := newNBConn(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return newTLS(ctx, raw, cfg, true)
}

// NewTLSClient runs a client handshake on c.
func NewTLSClient(ctx context.Context, c *net.TCPConn, cfg *tls.Config) (*TLSSocket, error) {
	raw, err := newNBConn(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return newTLS(ctx, raw, cfg, false)
}

func newTLS(ctx context.Context, raw transport, cfg *tls.Config, server bool) (*TLSSocket, error) {
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS13
	cfg.MaxVersion = tls.VersionTLS13
	w := newSendQueue(raw)
	var conn *tls.Conn
	if server {
		conn = tls.Server(w, cfg)
	} else {
		conn = tls.Client(w, cfg)
	}
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", raw.RemoteAddr(), err)
	}
	return &TLSSocket{conn: conn, raw: raw, w: w, buf: make([]byte, maxRecord)}, nil
}

// ConnectionState returns the negotiated TLS parameters.
func (s *TLSSocket) ConnectionState() tls.ConnectionState { return s.conn.ConnectionState() }

// Filetype implements File.
func (s *TLSSocket) Filetype() Filetype { return FiletypeSocketStream }

// Rights implements File.
func (s *TLSSocket) Rights() uint64 { return RightsSocket }

// fill reads the next plaintext into the stash. It returns false if that
// would block.
func (s *TLSSocket) fill(nonblock bool) bool {
	s.w.setNonblock(nonblock)
	n, err := s.conn.Read(s.buf)
	s.w.setNonblock(false)
	s.stash = s.buf[:n]
	if err != nil {
		var wb wouldBlock
		if errors.As(err, &wb) {
			return n > 0
		}
		if err == io.EOF && s.w.eof.Load() && !s.readShut {
			// The transport ended, not the peer's TLS stream: a
			// close_notify ends crypto/tls's reading before the
			// transport's end is read.
			err = errTruncated
		}
		s.pending = err
	}
	return true
}

// Read implements Stream.
func (s *TLSSocket) Read(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.stash) == 0 && s.pending == nil {
		if !s.fill(nonblock) {
			return 0, ErrWouldBlock
		}
	}
	if len(s.stash) > 0 {
		n := copy(p, s.stash)
		s.stash = s.stash[n:]
		return n, nil
	}
	return 0, s.pending
}

// Peek implements Peeker: the plaintext stays in the Keep's buffer.
func (s *TLSSocket) Peek(p []byte, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.stash) == 0 && s.pending == nil {
		if !s.fill(nonblock) {
			return 0, ErrWouldBlock
		}
	}
	if len(s.stash) > 0 {
		return copy(p, s.stash), nil
	}
	return 0, s.pending
}

// Write implements Stream. A non-blocking write returns EAGAIN while
// ciphertext is queued, and otherwise writes until the transport stops
// taking records whole (what it did not take is queued).
func (s *TLSSocket) Write(p []byte, nonblock bool) (int, error) {
	if s.writeShut {
		return 0, errWriteShut
	}
	if !nonblock {
		return s.conn.Write(p)
	}
	total := 0
	for total < len(p) {
		if s.w.flushing() {
			if total == 0 {
				return 0, ErrWouldBlock
			}
			break
		}
		s.w.nonblock = true
		n, err := s.conn.Write(p[total:min(len(p), total+maxNonblockWrite)])
		s.w.nonblock = false
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// PollFD implements Poller. For reading it first decodes any complete
// records crypto/tls already holds, so buffered data is never missed, and
// reads all the ciphertext there is (fill reads until the transport would
// block), so the transport's descriptor becomes readable again only when
// more arrives: a partial record leaves nothing behind to wake a poller
// in vain.
func (s *TLSSocket) PollFD(write bool) (int, bool) {
	if write {
		if s.writeShut {
			// A write fails at once, as after a kernel's
			// shutdown(SHUT_WR).
			return -1, true
		}
		return s.writable()
	}
	for range maxPollTurns {
		if len(s.stash) > 0 || s.pending != nil {
			return -1, true
		}
		if s.fill(true) {
			return -1, true
		}
		fd, ok := s.raw.pollFD(false)
		if !ok {
			return fd, false
		}
		// Ciphertext arrived since fill looked (a channel stream says
		// so): that is not plaintext yet, so read it too.
	}
	// Ciphertext kept arriving in the instant between two reads (or the
	// transport says readable but has nothing): let the caller try.
	return -1, true
}

// writable is PollFD(true) before the guest shut writing: writable once
// the queue is sent and the transport can take more.
func (s *TLSSocket) writable() (int, bool) {
	if fd, ok := s.w.pollQueue(); !ok {
		return fd, false
	}
	fd, ok := s.raw.pollFD(true)
	if !ok && !s.raw.pollHint() && pollNow(fd, true) {
		return -1, true
	}
	return fd, ok
}

// FlushFD implements Flusher: flushed once the send queue is empty.
func (s *TLSSocket) FlushFD() (int, bool) { return s.w.pollQueue() }

// maxPollTurns bounds TLSSocket.PollFD's reads: each turn reads all the
// ciphertext there is, so a second one is already rare.
const maxPollTurns = 16

// PollHint implements HintPoller: for reading, the transport's readiness
// may be part of a record; for writing, the descriptor is the send
// queue's write hint while ciphertext is queued, and the transport's
// readiness says nothing of the queue.
func (s *TLSSocket) PollHint(bool) bool { return true }

// Shutdown implements Socket. Shutting down writing never waits, as a
// kernel's shutdown(SHUT_WR) does not: close_notify goes behind the
// queued ciphertext, and the transport's write half is closed after it,
// in the background if the transport does not take them now (see
// sendQueue.closeWrite: no goroutine beyond the send queue's flusher, no
// deadline, as a FIN waits behind unsent data). Later writes fail with
// EPIPE; fd_close lets the queue go first (see Close).
func (s *TLSSocket) Shutdown(how int) error {
	if how&ShutWrite != 0 && !s.writeShut {
		s.writeShut = true
		if err := s.w.closeWrite(s.conn.CloseWrite); err != nil {
			return fmt.Errorf("sending TLS close_notify to %s: %w", s.raw.RemoteAddr(), err)
		}
	}
	if how&ShutRead != 0 {
		s.readShut = true
		return s.raw.CloseRead()
	}
	return nil
}

// maxLingering bounds the TLS streams closed while their peer did not
// read that still send their queue and close_notify in the background
// (each for at most crypto/tls's 5 s, holding its queue): beyond it, a
// close cuts the stream, as the kernel drops orphaned sockets.
const maxLingering = 64

// lingering holds a slot per TLS stream that lingers (see Close).
var lingering = make(chan struct{}, maxLingering)

// Close implements File. It sends close_notify after the queued
// ciphertext, as Shutdown does, then closes the transport. If the
// transport cannot take the alert now (ciphertext is still queued, or the
// peer does not read), that happens in the background, bounded by
// crypto/tls's 5 s write deadline, and Close returns at once: as close(2)
// of a TCP socket, fd_close never waits for the peer (a peer that stopped
// reading stalled the whole guest for 5 s per connection). After a
// shutdown of writing, the close_notify is already queued: the queue is
// sent the same way, within the same 5 s. With maxLingering streams
// lingering already, the transport is closed at once instead: the peer
// sees the stream end without close_notify.
func (s *TLSSocket) Close() error {
	shut := s.writeShut
	if shut {
		if !s.w.flushing() {
			return s.conn.Close()
		}
	} else if _, writable := s.writable(); writable {
		return s.conn.Close()
	}
	select {
	case lingering <- struct{}{}:
		go func() {
			defer func() { <-lingering }()
			if shut {
				// crypto/tls's Close sends nothing more.
				s.w.drain()
			}
			s.conn.Close()
		}()
	default:
		s.w.Close()
	}
	return nil
}

// TCPListener is a listening TCP socket. With a TLS config, accepted
// connections complete a TLS 1.3 handshake in the background (see
// handshaker) before sock_accept returns them; sock_accept never waits
// for a peer unless it is blocking.
type TCPListener struct {
	// OnHandshakeError, if set, is told about failed or timed-out TLS
	// handshakes: the connection is dropped, the guest never sees it.
	// Any peer can cause one, so it should log at debug level. It is
	// read when the listener is first accepted from or polled, and
	// called from a background goroutine.
	OnHandshakeError func(remote net.Addr, err error)

	ctx context.Context
	l   *net.TCPListener
	rc  syscall.RawConn
	fd  int
	tls *tls.Config
	hs  *handshaker // with tls
}

// NewTCPListener wraps l. tlsConfig nil means plain TCP.
func NewTCPListener(ctx context.Context, l *net.TCPListener, tlsConfig *tls.Config) (*TCPListener, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, err := rawFD(l)
	if err != nil {
		return nil, err
	}
	tl := &TCPListener{ctx: ctx, l: l, rc: rc, fd: fd, tls: tlsConfig}
	if tlsConfig != nil {
		if tl.hs, err = newHandshaker(ctx); err != nil {
			return nil, err
		}
		tl.hs.loop = tl.acceptLoop
	}
	return tl, nil
}

// Filetype implements File.
func (l *TCPListener) Filetype() Filetype { return FiletypeSocketStream }

// Rights implements File.
func (l *TCPListener) Rights() uint64 { return RightsListener }

// Accept implements Listener. A TLS listener returns a connection whose
// handshake completed, or (if nonblock) ErrWouldBlock when there is none;
// a blocking one waits for one until ctx ends.
func (l *TCPListener) Accept(ctx context.Context, nonblock bool) (Socket, error) {
	if l.hs != nil {
		l.hs.start(l.OnHandshakeError)
		return l.hs.accept(ctx, nonblock)
	}
	var c *net.TCPConn
	if nonblock {
		var nfd int
		var aerr error
		// The listener is in non-blocking mode (Go's poller put it there),
		// so a direct accept4 never waits. (A listener's RawConn has no
		// Read method.)
		if err := l.rc.Control(func(fd uintptr) {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		}); err != nil {
			return nil, err
		}
		if aerr != nil {
			return nil, aerr
		}
		f := os.NewFile(uintptr(nfd), "accepted")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			nc.Close()
			return nil, syscall.ENOTSOCK
		}
		c = tc
	} else {
		var err error
		if c, err = l.l.AcceptTCP(); err != nil {
			return nil, err
		}
	}
	return NewTCPSocket(c)
}

// acceptLoop is a TLS listener's accept loop (see handshaker): it accepts
// a connection whenever a slot is free, and starts its handshake.
func (l *TCPListener) acceptLoop() {
	h := l.hs
	// AcceptTCP does not watch the context: a deadline in the past stops
	// it when the run ends (Close stops it by closing the listener).
	stop := context.AfterFunc(h.ctx, func() { l.l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var delay time.Duration
	for h.slot() {
		c, err := l.l.AcceptTCP()
		if err != nil {
			h.release()
			switch {
			case h.ctx.Err() != nil, errors.Is(err, net.ErrClosed):
				return
			case transientAcceptError(err):
				if !h.backoff(&delay) {
					return
				}
				continue
			}
			h.fail(err)
			return
		}
		delay = 0
		h.handshake(c.RemoteAddr(), func(ctx context.Context) (*TLSSocket, error) {
			return NewTLSServer(ctx, c, l.tls)
		})
	}
}

// PollFD implements Poller. A TLS listener is readable when a completed
// handshake is queued; its host descriptor is an eventfd set when one
// completes.
func (l *TCPListener) PollFD(write bool) (int, bool) {
	if write {
		return -1, true
	}
	if l.hs != nil {
		l.hs.start(l.OnHandshakeError)
		return l.hs.pollFD()
	}
	return l.fd, false
}

// PollHint implements HintPoller: a TLS listener's eventfd is a hint (the
// guest may have accepted the connection since it was set); a plain
// listener's descriptor is the listening socket itself.
func (l *TCPListener) PollHint(write bool) bool { return !write && l.hs != nil }

// Close implements File: it stops the handshakes under way and closes the
// connections accepted from the socket but not by the guest.
func (l *TCPListener) Close() error {
	if l.hs == nil {
		return l.l.Close()
	}
	l.hs.stop()
	err := l.l.Close()
	l.hs.wait()
	return err
}
