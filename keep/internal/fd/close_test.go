package fd

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// deafConn is a memConn whose peer stops reading while stalled: nothing
// is delivered, a non-blocking write takes nothing, a blocking one waits
// (and, like a transport that ignores write deadlines, for as long as the
// stall lasts) until the stall ends or the conn is closed.
type deafConn struct {
	*memConn
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	closed  bool
}

func newDeafConn(c *memConn) *deafConn {
	s := &deafConn{memConn: c}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (c *deafConn) stall(on bool) {
	c.mu.Lock()
	c.stalled = on
	c.cond.Broadcast()
	c.mu.Unlock()
	if !on {
		c.memConn.mu.Lock()
		n := c.memConn.notify
		c.memConn.mu.Unlock()
		if n != nil {
			n()
		}
	}
}

func (c *deafConn) Writable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.stalled
}

func (c *deafConn) TryWrite(p []byte) (int, error) {
	if !c.Writable() {
		return 0, ErrWouldBlock
	}
	return c.memConn.Write(p)
}

func (c *deafConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.stalled && !c.closed {
		c.cond.Wait()
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	return c.memConn.Write(p)
}

func (c *deafConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.memConn.Close()
}

// deafTLS returns the Keep's (server) side of a TLS stream over a
// deafConn, the deafConn, and the client's side.
func deafTLS(t *testing.T, cert tls.Certificate) (*TLSSocket, *deafConn, *tls.Conn) {
	t.Helper()
	a, b := memPipe()
	sc := newDeafConn(a)
	cc := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	s := handshaken(t, cc, func() (*TLSSocket, error) {
		return NewConnTLSServer(context.Background(), sc, &tls.Config{Certificates: []tls.Certificate{cert}})
	})
	return s, sc, cc
}

// handshaken returns the Keep's side of a TLS stream, made by newServer
// while the client cc completes its handshake with it.
func handshaken(t *testing.T, cc *tls.Conn, newServer func() (*TLSSocket, error)) *TLSSocket {
	t.Helper()
	handshake := make(chan error, 1)
	go func() { handshake <- cc.Handshake() }()
	s, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTLSCloseDoesNotWaitForPeer: fd_close of a TLS socket whose peer
// stopped reading must not keep the guest waiting for the peer (a
// single-threaded server closing such a connection stalled for crypto/tls's
// 5 s close_notify deadline, per connection, or longer over a transport
// without deadlines), as close(2) of a TCP socket does not wait; what was
// queued, and the close_notify after it, still reach the peer once it
// reads again.
func TestTLSCloseDoesNotWaitForPeer(t *testing.T) {
	s, sc, cc := deafTLS(t, selfSigned(t))
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(cc)
		got <- result{data, err}
	}()

	sc.stall(true)
	defer sc.stall(false) // lets a Close that waits end when the test fails
	msg := bytes.Repeat([]byte("reply "), 7000)
	if n, err := s.Write(msg, true); n != len(msg) || err != nil {
		t.Fatalf("non-blocking write to a stalled peer = %d, %v; want everything queued", n, err)
	}
	within(t, "fd_close of a TLS socket whose peer does not read", func() { s.Close() })

	sc.stall(false)
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the peer's read after close: %v (no close_notify)", r.err)
		}
		if !bytes.Equal(r.data, msg) {
			t.Fatalf("the peer received %d bytes, want the %d queued before close", len(r.data), len(msg))
		}
	case <-time.After(hangLimit):
		t.Fatal("the peer did not receive the queued data and close_notify")
	}
}

// noLingering waits until no closed TLS stream lingers.
func noLingering(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for len(lingering) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d closed TLS streams still linger", len(lingering))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTLSCloseLingerBounded: a closed TLS stream whose peer does not read
// lingers to send its queue (see TestTLSCloseDoesNotWaitForPeer), but
// only maxLingering at once: peers that connect, ask, never read and make
// the guest close could otherwise hold a queue each, for 5 s, as fast as
// they connect. A close beyond the bound cuts the stream at once.
func TestTLSCloseLingerBounded(t *testing.T) {
	noLingering(t)
	cert := selfSigned(t)
	msg := bytes.Repeat([]byte("reply "), 7000)
	var conns []*deafConn
	defer func() {
		for _, c := range conns {
			c.stall(false)
		}
	}()
	for i := 0; i <= maxLingering; i++ {
		s, sc, _ := deafTLS(t, cert)
		sc.stall(true)
		conns = append(conns, sc)
		if n, err := s.Write(msg, true); n != len(msg) || err != nil {
			t.Fatalf("non-blocking write to a stalled peer = %d, %v; want everything queued", n, err)
		}
		within(t, "fd_close of a TLS socket whose peer does not read", func() { s.Close() })
		sc.mu.Lock()
		closed := sc.closed
		sc.mu.Unlock()
		if lingers := i < maxLingering; closed == lingers {
			t.Fatalf("close %d of streams whose peer does not read: transport closed %v, want %v (%d may linger)",
				i+1, closed, !lingers, maxLingering)
		}
	}
	for _, c := range conns {
		c.stall(false)
	}
	noLingering(t)
}
