package fd

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxNonblockWrite is how much plaintext a non-blocking TLS write hands
// crypto/tls at a time: it stops once the transport stops taking the
// records whole, so the ciphertext it leaves queued is at most this much
// (and the records' overhead).
const maxNonblockWrite = 4 * maxRecord

// maxQueued bounds the ciphertext queued behind a flusher: a non-blocking
// write's and, beyond it, what crypto/tls answers while the guest reads
// (KeyUpdate replies, alerts) from a peer that does not read.
const maxQueued = maxNonblockWrite + maxRecord

// errQueueFull fails a write crypto/tls makes while the peer does not
// read what it was sent (a flood of KeyUpdate requests).
var errQueueFull = fmt.Errorf("TLS peer does not read what the Keep sends: %w", syscall.ENOBUFS)

// errWriteShut fails a write after the guest shut writing down.
var errWriteShut = fmt.Errorf("TLS stream's writing was shut down (sock_shutdown): %w", syscall.EPIPE)

// closeNotifyTimeout is how long a closed TLS stream lingers to send its
// queue and close_notify: crypto/tls's close_notify write deadline.
const closeNotifyTimeout = 5 * time.Second

// sendQueue is a TLSSocket's transport as crypto/tls sees it. Writes made
// during a non-blocking call (a non-blocking write's records, what
// crypto/tls answers during a non-blocking read) never wait for the peer:
// what the transport does not take at once is queued and sent by a
// flusher goroutine, before anything written later; other writes wait for
// the flusher, then write. A TLS record cannot be taken back once
// crypto/tls made it, so this is what lets a non-blocking write return
// EAGAIN instead of waiting (with the whole guest) for a peer that may
// never read; the queue is the stream's send buffer beyond the socket's.
type sendQueue struct {
	transport
	// nonblock is set around the guest's non-blocking calls (by the
	// guest's goroutine, the only one that reads and writes).
	nonblock bool
	// closing is set (as nonblock) around crypto/tls's close_notify
	// (see closeWrite).
	closing bool

	mu   sync.Mutex
	idle sync.Cond // signalled when busy ends
	busy bool      // a flusher runs
	out  []byte    // queued behind what the flusher writes
	err  error     // a queued write failed: every later write fails
	// shut is set once close_notify was written or queued (see
	// closeWrite): the flusher closes the transport's write half after
	// the queue, and later writes fail.
	shut bool
	// evfd is a write hint (see clearWriteHint) fired when busy ends;
	// made with the first flusher, -1 before.
	evfd      int
	flushers  sync.WaitGroup
	closeOnce sync.Once
	// eof is set once a read of the transport found its end (see
	// TLSSocket.fill: crypto/tls reports an end without close_notify
	// as io.EOF too).
	eof atomic.Bool
}

func newSendQueue(raw transport) *sendQueue {
	q := &sendQueue{transport: raw, evfd: -1}
	q.idle.L = &q.mu
	return q
}

// setNonblock makes reads and writes of the transport not wait.
func (q *sendQueue) setNonblock(b bool) {
	q.nonblock = b
	q.transport.setNonblock(b)
}

// Read implements net.Conn for crypto/tls, noting the transport's end.
func (q *sendQueue) Read(p []byte) (int, error) {
	n, err := q.transport.Read(p)
	if n == 0 && errors.Is(err, io.EOF) {
		q.eof.Store(true)
	}
	return n, err
}

// Write implements net.Conn for crypto/tls.
func (q *sendQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	if q.shut {
		// Nothing goes after close_notify. The guest's writes fail
		// before they get here (TLSSocket.Write); what crypto/tls
		// still writes is dropped, not failed: the KeyUpdate it
		// answers a peer's request with (and alerts). crypto/tls
		// moves to the peer's next key only once that answer is
		// written: a failed write left it on the old key, every
		// later record failed to decrypt, and a guest that had shut
		// writing lost the rest of the peer's stream.
		q.mu.Unlock()
		return len(p), nil
	}
	for q.busy && !q.nonblock {
		q.idle.Wait()
	}
	if err := q.err; err != nil {
		q.mu.Unlock()
		return 0, err
	}
	if q.busy {
		defer q.mu.Unlock()
		if len(q.out)+len(p) > maxQueued && !q.closing {
			return 0, errQueueFull
		}
		q.out = append(q.out, p...)
		return len(p), nil
	}
	q.mu.Unlock()
	if !q.nonblock {
		return q.transport.Write(p)
	}
	n, err := q.tryWrite(p)
	switch {
	case errors.Is(err, ErrWouldBlock):
		n = 0
	case err != nil, n == len(p):
		return n, err
	}
	if err := q.queue(p[n:]); err != nil {
		return n, err
	}
	return len(p), nil
}

// queue starts a flusher for p (q not busy).
func (q *sendQueue) queue(p []byte) error {
	// A close_notify queued by closeWrite needs no write hint: nothing
	// polls for the queue once writes fail.
	if q.evfd < 0 && !q.closing {
		evfd, err := newWriteHint()
		if err != nil {
			// Nothing to tell a poller when the queue is sent: wait.
			_, err := q.transport.Write(p)
			return err
		}
		q.evfd = evfd
	}
	q.mu.Lock()
	q.busy = true
	q.out = append(q.out[:0], p...)
	q.mu.Unlock()
	q.flushers.Add(1)
	go q.flush()
	return nil
}

// flush writes the queue until it is empty or a write fails.
func (q *sendQueue) flush() {
	defer q.flushers.Done()
	q.mu.Lock()
	for len(q.out) > 0 && q.err == nil {
		b := q.out
		q.out = nil
		q.mu.Unlock()
		_, err := q.transport.Write(b)
		q.mu.Lock()
		if err != nil {
			q.err = err
		}
	}
	if q.shut && q.err == nil {
		// close_notify was queued last (see closeWrite): the
		// transport's write half ends after it, as a kernel's FIN
		// after the data.
		q.mu.Unlock()
		err := q.transport.CloseWrite()
		q.mu.Lock()
		if err != nil {
			q.err = err
		}
	}
	q.out = nil
	q.busy = false
	q.idle.Broadcast()
	q.mu.Unlock()
	if q.evfd >= 0 {
		fireWriteHint(q.evfd)
	}
}

// closeWrite has notify (crypto/tls's CloseWrite) make its close_notify
// without waiting, as a non-blocking write: the alert goes behind the
// queued ciphertext, or is queued itself if the transport does not take
// it whole, whatever maxQueued says (one small record, once per stream).
// The transport's write half is then closed at once if nothing is
// queued, or else by the flusher once the queue is sent (without a
// deadline, as a kernel's FIN waits behind unsent data). Later writes
// fail with EPIPE. The deadlines crypto/tls sets around the alert are
// ignored: they would cut the flusher's write short.
func (q *sendQueue) closeWrite(notify func() error) error {
	q.closing, q.nonblock = true, true
	err := notify()
	q.closing, q.nonblock = false, false
	q.mu.Lock()
	q.shut = true
	busy := q.busy
	q.mu.Unlock()
	if err != nil || busy {
		return err
	}
	return q.transport.CloseWrite()
}

// SetWriteDeadline implements net.Conn, except during closeWrite.
func (q *sendQueue) SetWriteDeadline(t time.Time) error {
	if q.closing {
		return nil
	}
	return q.transport.SetWriteDeadline(t)
}

// drain waits until the flusher has sent the queue (and, after
// closeWrite, closed the write half), or for closeNotifyTimeout at most,
// as crypto/tls's close_notify waits: the transport's write deadline
// ends the flusher's write.
func (q *sendQueue) drain() {
	q.transport.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	q.mu.Lock()
	for q.busy {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// flushing reports whether a flusher runs.
func (q *sendQueue) flushing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy
}

// pollQueue reports whether the queue is empty; if not, its host
// descriptor is the write hint the flusher fires when it is, cleared
// first.
func (q *sendQueue) pollQueue() (int, bool) {
	if !q.flushing() {
		return -1, true
	}
	clearWriteHint(q.evfd)
	if !q.flushing() {
		return -1, true
	}
	return q.evfd, false
}

// Close implements net.Conn: closing the transport ends a flusher's
// write.
func (q *sendQueue) Close() error {
	err := q.transport.Close()
	q.flushers.Wait()
	q.closeOnce.Do(func() {
		if q.evfd >= 0 {
			unix.Close(q.evfd)
		}
	})
	return err
}
