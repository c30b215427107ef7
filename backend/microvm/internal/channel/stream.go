package channel

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// windowUpdate is how many consumed bytes a reader lets accumulate before
// it grants them back to the writer.
const windowUpdate = Window / 4

// Stream is one multiplexed byte stream. It is a net.Conn (blocking reads
// and writes with deadlines, half-close with CloseRead and CloseWrite) and
// also offers non-blocking TryRead and TryWrite with readiness reporting,
// which the Keep's WASI layer needs.
type Stream struct {
	m  *Mux
	id uint32

	wmu sync.Mutex // serialises writers, so their frames do not interleave

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every state change
	notify    func()
	chunks    [][]byte // received, not yet read
	off       int      // read offset into chunks[0]
	buffered  int
	recvAllow int // bytes the peer may still send
	consumed  int // bytes read since the last window update
	credit    int // bytes we may still send
	peerFin   bool
	peerStop  bool
	peerReset string // non-empty: the peer aborted the stream
	finSent   bool
	stopSent  bool
	closed    bool
	rDeadline time.Time
	wDeadline time.Time
	peer      string
	// writeEnd, once WriteClosed made it, is closed when nothing more
	// can be written (writeErr is not nil).
	writeEnd chan struct{}
}

func newStream(m *Mux, id uint32) *Stream {
	return &Stream{m: m, id: id, changed: make(chan struct{}), recvAllow: Window, credit: Window}
}

// ID is the stream identifier.
func (s *Stream) ID() uint32 { return s.id }

// SetPeer records the remote address RemoteAddr reports.
func (s *Stream) SetPeer(addr string) {
	s.mu.Lock()
	s.peer = addr
	s.mu.Unlock()
}

// SetNotify sets a function called after every change that may make the
// stream readable or writable (data, window, end of stream, errors,
// deadlines). It runs with the stream locked: it must not block or call
// the stream. It is called once immediately.
func (s *Stream) SetNotify(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify = f
	if f != nil {
		f()
	}
}

// signal wakes waiters and the notify function; s.mu is held.
func (s *Stream) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
	if s.notify != nil {
		s.notify()
	}
	s.checkWriteEnd()
}

// checkWriteEnd closes writeEnd if it exists and nothing more can be
// written; s.mu is held.
func (s *Stream) checkWriteEnd() {
	if s.writeEnd == nil {
		return
	}
	select {
	case <-s.writeEnd:
	default:
		if s.writeErr() != nil {
			close(s.writeEnd)
		}
	}
}

// WriteClosed returns a channel that is closed once nothing more can be
// written to the stream: the peer stopped reading or reset it, we ended
// our direction or closed the stream, or the channel ended. A relay uses
// it to stop reading a source whose bytes can no longer go anywhere.
func (s *Stream) WriteClosed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeEnd == nil {
		s.writeEnd = make(chan struct{})
		s.checkWriteEnd()
	}
	return s.writeEnd
}

// wait releases s.mu until the state changes or the deadline passes, and
// reacquires it.
func (s *Stream) wait(deadline time.Time) error {
	ch := s.changed
	if deadline.IsZero() {
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	s.mu.Unlock()
	select {
	case <-ch:
	case <-t.C:
	}
	t.Stop()
	s.mu.Lock()
	return nil // the caller re-checks, with the deadline as it is now
}

// Errors a stream reports.
var (
	// ErrReset: the peer aborted the stream.
	ErrReset = syscall.ECONNRESET
	// ErrStopped: the peer reads no more (or we shut our writing down).
	ErrStopped = syscall.EPIPE
	// ErrWouldBlock: a non-blocking operation cannot make progress now.
	ErrWouldBlock = syscall.EAGAIN
)

// readErr is why nothing can be read, or nil if waiting may help.
func (s *Stream) readErr() error {
	switch {
	case s.closed:
		return net.ErrClosed
	case s.peerReset != "":
		return ErrReset
	case s.peerFin, s.stopSent:
		return io.EOF
	}
	if err := s.m.Err(); err != nil {
		return channelEnded(err)
	}
	return nil
}

func (s *Stream) writeErr() error {
	switch {
	case s.closed:
		return net.ErrClosed
	case s.peerReset != "":
		return ErrReset
	case s.peerStop, s.finSent:
		return ErrStopped
	}
	if err := s.m.Err(); err != nil {
		return channelEnded(err)
	}
	return nil
}

func channelEnded(err error) error {
	if errors.Is(err, ErrProtocol) {
		return err
	}
	return syscall.ECONNRESET
}

// take copies buffered bytes into p; s.mu is held. It returns the count
// and a window increment to send (0 for none).
func (s *Stream) take(p []byte) (int, uint32) {
	n := 0
	for n < len(p) && len(s.chunks) > 0 {
		c := copy(p[n:], s.chunks[0][s.off:])
		n += c
		s.off += c
		if s.off == len(s.chunks[0]) {
			s.chunks[0] = nil
			s.chunks = s.chunks[1:]
			s.off = 0
		}
	}
	s.buffered -= n
	s.consumed += n
	if s.consumed >= windowUpdate && !s.peerFin && s.peerReset == "" && !s.stopSent {
		inc := s.consumed
		s.consumed = 0
		s.recvAllow += inc
		return n, uint32(inc)
	}
	return n, 0
}

func (s *Stream) grant(inc uint32) {
	if inc == 0 {
		return
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], inc)
	s.m.writeFrame(TypeWindow, s.id, b[:])
}

// Read implements net.Conn: it waits for data, the end of the stream or
// the read deadline.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	for {
		if s.buffered > 0 {
			n, inc := s.take(p)
			s.mu.Unlock()
			s.grant(inc)
			return n, nil
		}
		if err := s.readErr(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
		if err := s.wait(s.rDeadline); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
}

// TryRead reads what is buffered without waiting: ErrWouldBlock if
// nothing is, io.EOF at the end of the stream.
func (s *Stream) TryRead(p []byte) (int, error) {
	s.mu.Lock()
	if s.buffered > 0 && len(p) > 0 {
		n, inc := s.take(p)
		s.mu.Unlock()
		s.grant(inc)
		return n, nil
	}
	err := s.readErr()
	s.mu.Unlock()
	if err == nil {
		err = ErrWouldBlock
	}
	if len(p) == 0 && err == ErrWouldBlock {
		return 0, nil
	}
	return 0, err
}

// Peek copies buffered bytes into p without consuming them; like TryRead
// it does not wait.
func (s *Stream) Peek(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buffered > 0 {
		n, off := 0, s.off
		for _, c := range s.chunks {
			n += copy(p[n:], c[off:])
			off = 0
			if n == len(p) {
				break
			}
		}
		return n, nil
	}
	if err := s.readErr(); err != nil {
		return 0, err
	}
	return 0, ErrWouldBlock
}

// Readable reports whether Read would return without waiting.
func (s *Stream) Readable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buffered > 0 || s.readErr() != nil
}

// Writable reports whether Write would make progress without waiting.
func (s *Stream) Writable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.credit > 0 || s.writeErr() != nil
}

// Write implements net.Conn: it writes all of p, waiting for window.
func (s *Stream) Write(p []byte) (int, error) {
	return s.write(p, false)
}

// TryWrite writes as much of p as the peer's window allows now:
// ErrWouldBlock if nothing.
func (s *Stream) TryWrite(p []byte) (int, error) {
	return s.write(p, true)
}

func (s *Stream) write(p []byte, try bool) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	total := 0
	for len(p) > 0 {
		s.mu.Lock()
		for s.credit == 0 {
			if err := s.writeErr(); err != nil {
				s.mu.Unlock()
				return total, err
			}
			if try {
				s.mu.Unlock()
				if total > 0 {
					return total, nil
				}
				return 0, ErrWouldBlock
			}
			if err := s.wait(s.wDeadline); err != nil {
				s.mu.Unlock()
				return total, err
			}
		}
		if err := s.writeErr(); err != nil {
			s.mu.Unlock()
			return total, err
		}
		n := min(len(p), s.credit, MaxData)
		s.credit -= n
		s.mu.Unlock()
		if err := s.m.writeFrame(TypeData, s.id, p[:n]); err != nil {
			return total, channelEnded(err)
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

// CloseWrite ends our direction: the peer reads the end of the stream
// after what was written.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	if s.finSent {
		s.mu.Unlock()
		return nil
	}
	s.finSent = true
	s.signal()
	s.mu.Unlock()
	// After any data frame a writer is sending (it then sees finSent).
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.m.writeFrame(TypeFin, s.id, nil)
}

// CloseRead ends the peer's direction: buffered and later data are
// dropped, and the peer's writes fail.
func (s *Stream) CloseRead() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	if s.stopSent {
		s.mu.Unlock()
		return nil
	}
	s.stopSent = true
	s.chunks, s.off, s.buffered = nil, 0, 0
	s.signal()
	s.mu.Unlock()
	return s.m.writeFrame(TypeStop, s.id, nil)
}

// Close closes both directions, like closing a socket: the peer reads the
// end of the stream, and its further writes fail.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	fin := !s.finSent && s.peerReset == "" && !s.peerStop
	stop := !s.stopSent && s.peerReset == "" && !s.peerFin
	s.closed, s.finSent, s.stopSent = true, true, true
	s.chunks, s.off, s.buffered = nil, 0, 0
	s.signal()
	s.mu.Unlock()
	s.m.remove(s.id)
	s.wmu.Lock() // after any data frame a writer is sending
	defer s.wmu.Unlock()
	if fin {
		s.m.writeFrame(TypeFin, s.id, nil)
	}
	if stop {
		s.m.writeFrame(TypeStop, s.id, nil)
	}
	return nil
}

// Reset aborts the stream both ways with a short reason for the peer.
func (s *Stream) Reset(reason string) {
	if s.markReset() {
		s.m.writeFrame(TypeReset, s.id, resetReason(reason))
	}
}

// resetAsync is Reset for the reading goroutine.
func (s *Stream) resetAsync(reason string) {
	if s.markReset() {
		s.m.post(TypeReset, s.id, resetReason(reason))
	}
}

func (s *Stream) markReset() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed, s.finSent, s.stopSent = true, true, true
	s.chunks, s.off, s.buffered = nil, 0, 0
	s.signal()
	s.mu.Unlock()
	s.m.remove(s.id)
	return true
}

func resetReason(r string) []byte {
	if len(r) > 256 {
		r = r[:256]
	}
	return []byte(r)
}

// PeerResetReason is the reason the peer gave when it reset the stream.
func (s *Stream) PeerResetReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerReset
}

func (s *Stream) onData(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peerFin || s.peerReset != "" {
		return violation("data on stream %d after its end", s.id)
	}
	if len(p) > s.recvAllow {
		return violation("stream %d: %d bytes beyond a window of %d", s.id, len(p), s.recvAllow)
	}
	s.recvAllow -= len(p)
	if s.stopSent || s.closed || len(p) == 0 {
		return nil
	}
	if len(p) < smallData {
		// p is the reader's scratch buffer: copy it, into the last
		// chunk if it has room, else into a new chunk of smallData
		// bytes. Of two chunks in a row at least smallData bytes are
		// used, so tiny frames cost at most about twice their bytes.
		n := len(s.chunks)
		if n > 0 && cap(s.chunks[n-1])-len(s.chunks[n-1]) >= len(p) {
			s.chunks[n-1] = append(s.chunks[n-1], p...)
		} else {
			s.chunks = append(s.chunks, append(make([]byte, 0, smallData), p...))
		}
	} else {
		s.chunks = append(s.chunks, p) // freshly allocated by readFrame
	}
	s.buffered += len(p)
	s.signal()
	return nil
}

func (s *Stream) onWindow(inc uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int64(s.credit)+int64(inc) > Window {
		return violation("stream %d: window grown beyond %d bytes", s.id, Window)
	}
	s.credit += int(inc)
	s.signal()
	return nil
}

func (s *Stream) onFin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peerFin {
		return violation("stream %d ended twice", s.id)
	}
	s.peerFin = true
	s.signal()
	return nil
}

func (s *Stream) onStop() {
	s.mu.Lock()
	s.peerStop = true
	s.signal()
	s.mu.Unlock()
}

func (s *Stream) onReset(reason string) {
	if reason == "" {
		reason = "reset"
	}
	s.mu.Lock()
	s.peerReset = reason
	s.chunks, s.off, s.buffered = nil, 0, 0
	s.signal()
	s.mu.Unlock()
}

// Addr is a stream endpoint's address.
type Addr string

// Network implements net.Addr.
func (Addr) Network() string { return "enarx-channel" }

func (a Addr) String() string { return string(a) }

// LocalAddr implements net.Conn.
func (s *Stream) LocalAddr() net.Addr { return Addr("keep") }

// RemoteAddr implements net.Conn: the peer address the host reported.
func (s *Stream) RemoteAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peer == "" {
		return Addr("host")
	}
	return Addr(s.peer)
}

// SetDeadline implements net.Conn.
func (s *Stream) SetDeadline(t time.Time) error {
	s.mu.Lock()
	s.rDeadline, s.wDeadline = t, t
	s.signal()
	s.mu.Unlock()
	return nil
}

// SetReadDeadline implements net.Conn.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rDeadline = t
	s.signal()
	s.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.Conn.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wDeadline = t
	s.signal()
	s.mu.Unlock()
	return nil
}
