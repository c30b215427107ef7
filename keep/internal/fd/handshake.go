package fd

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaxPendingHandshakes bounds the connections a TLS listener holds between
// the queue it accepts from (the kernel's listen backlog, or the Acceptor
// of a channel listener) and the guest: those whose TLS handshake runs,
// and those handshaken and waiting for sock_accept. Further connections
// wait in that queue, untouched, until the guest accepts one or a
// handshake fails (each is bounded by HandshakeTimeout). So silent peers
// delay other clients only once they hold all the slots at once, never a
// guest's sock_accept.
const MaxPendingHandshakes = 64

// handshaker runs the TLS handshakes of a listener's connections in the
// background, so that sock_accept never waits for a peer: an accept loop
// (the listener's) takes a connection from the listener's queue whenever a
// slot is free and starts its handshake; completed handshakes are queued
// for Accept, failed ones dropped (reported to onError, never to the
// guest). Its eventfd is set after each completion, and after the accept
// loop fails: a hint of the listener's readiness (see HintPoller).
type handshaker struct {
	// loop is the listener's accept loop, run by start: it takes a slot
	// (slot) before each connection and hands it to handshake, or
	// returns when slot fails (the listener is closing, or the run
	// ended); an error that ends it for good goes to fail.
	loop func()
	// ctx ends when the listener closes or the run's context ends; it
	// cancels the handshakes and stops the loop.
	ctx    context.Context
	cancel context.CancelFunc

	slots chan struct{}   // one per connection taken and not yet accepted or dropped
	done  chan *TLSSocket // completed handshakes, in order of completion
	evfd  int             // set when done or err may have changed
	wg    sync.WaitGroup  // the loop and the handshakes
	fails chan struct{}   // closed with err set

	mu      sync.Mutex
	started bool
	closed  bool
	err     error // the accept loop's, once it failed
	onError func(net.Addr, error)
}

func newHandshaker(ctx context.Context) (*handshaker, error) {
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	return &handshaker{
		ctx: hctx, cancel: cancel, evfd: evfd,
		slots: make(chan struct{}, MaxPendingHandshakes),
		done:  make(chan *TLSSocket, MaxPendingHandshakes),
		fails: make(chan struct{}),
	}, nil
}

// start runs the accept loop, once, unless the listener is closed. It is
// called by the guest's first sock_accept or poll of the listener, so a
// listener the guest never uses takes no connection; onError is the
// listener's OnHandshakeError then.
func (h *handshaker) start(onError func(net.Addr, error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.closed {
		return
	}
	h.started = true
	h.onError = onError
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.loop()
	}()
}

// slot waits for a free slot; false means the loop must end.
func (h *handshaker) slot() bool {
	select {
	case h.slots <- struct{}{}:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// release frees a slot.
func (h *handshaker) release() { <-h.slots }

// handshake runs run (the server handshake of the connection from remote,
// which holds a slot) in the background; run closes the connection if it
// fails.
func (h *handshaker) handshake(remote net.Addr, run func(context.Context) (*TLSSocket, error)) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s, err := run(h.ctx)
		if err != nil {
			h.release()
			if h.ctx.Err() == nil && h.onError != nil {
				h.onError(remote, err)
			}
			return
		}
		h.done <- s // never waits: the slot held makes room
		h.signal()
	}()
}

// fail records the error that ended the accept loop: Accept returns it
// once no completed handshake is left.
func (h *handshaker) fail(err error) {
	h.mu.Lock()
	if h.err == nil {
		h.err = err
		close(h.fails)
	}
	h.mu.Unlock()
	h.signal()
}

func (h *handshaker) signal() { unix.Write(h.evfd, one) }

func (h *handshaker) failed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// take returns a completed handshake, if there is one.
func (h *handshaker) take() *TLSSocket {
	select {
	case s := <-h.done:
		h.release()
		return s
	default:
		return nil
	}
}

// accept implements Listener.Accept for a TLS listener.
func (h *handshaker) accept(ctx context.Context, nonblock bool) (Socket, error) {
	if s := h.take(); s != nil {
		return s, nil
	}
	if err := h.failed(); err != nil {
		return nil, err
	}
	if nonblock {
		return nil, ErrWouldBlock
	}
	select {
	case s := <-h.done:
		h.release()
		return s, nil
	case <-h.fails:
		// A connection that completed meanwhile comes first.
		if s := h.take(); s != nil {
			return s, nil
		}
		return nil, h.failed()
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-h.ctx.Done():
		h.mu.Lock()
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		return nil, context.Cause(h.ctx)
	}
}

func (h *handshaker) ready() bool {
	return len(h.done) > 0 || h.failed() != nil
}

// pollFD implements Poller.PollFD for reading: ready with a completed
// handshake queued (or the loop failed, for Accept to say so); otherwise
// the eventfd, cleared first, so that it is set again only by a later
// completion.
func (h *handshaker) pollFD() (int, bool) {
	if h.ready() {
		return -1, true
	}
	var b [8]byte
	unix.Read(h.evfd, b[:])
	if h.ready() {
		return -1, true
	}
	return h.evfd, false
}

// stop begins closing: no loop starts any more, and the loop and the
// handshakes stop. The caller then closes what the loop accepts from,
// and calls wait.
func (h *handshaker) stop() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
}

// wait waits for the loop and the handshakes to end, then closes the
// connections no one accepted, and the eventfd.
func (h *handshaker) wait() {
	h.wg.Wait()
	for len(h.done) > 0 {
		(<-h.done).Close()
	}
	unix.Close(h.evfd)
}

// transientAcceptError reports whether an accept error may go away by
// itself (descriptors or memory run out for a while): the loop retries
// after a pause rather than failing the listener.
func transientAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// backoff waits before the accept loop retries after a transient error:
// 5 ms doubling up to 1 s, as net/http's server does. It returns false if
// the loop must end.
func (h *handshaker) backoff(delay *time.Duration) bool {
	if *delay == 0 {
		*delay = 5 * time.Millisecond
	} else {
		*delay = min(2**delay, time.Second)
	}
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}
