package fd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// eofConn notes whether a read of the connection found its end.
type eofConn struct {
	net.Conn
	eof atomic.Bool
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, io.EOF) {
		c.eof.Store(true)
	}
	return n, err
}

// shutdownKit is a TLS stream whose peer does not read until resume.
type shutdownKit struct {
	keep *TLSSocket
	// peer is the peer's TLS side, over transport.
	peer      *tls.Conn
	transport *eofConn
	// raw is the peer's TCP socket (nil over a channel).
	raw    *net.TCPConn
	resume func()
}

// tcpShutdownKit: the peer is at the other end of a loopback TCP
// connection with small buffers, and does not read until it does.
func tcpShutdownKit(t *testing.T, cert tls.Certificate) *shutdownKit {
	_, client, server := tcpPair(t)
	server.SetWriteBuffer(16 << 10)
	client.SetReadBuffer(16 << 10)
	ec := &eofConn{Conn: client}
	cc := tls.Client(ec, &tls.Config{InsecureSkipVerify: true})
	s := handshaken(t, cc, func() (*TLSSocket, error) {
		return NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{cert}})
	})
	return &shutdownKit{keep: s, peer: cc, transport: ec, raw: client, resume: func() {}}
}

// chanShutdownKit: the peer is over a channel stream that takes nothing
// (and whose writes ignore deadlines) until resume.
func chanShutdownKit(t *testing.T, cert tls.Certificate) *shutdownKit {
	a, b := memPipe()
	sc := newDeafConn(a)
	ec := &eofConn{Conn: b}
	cc := tls.Client(ec, &tls.Config{InsecureSkipVerify: true})
	s := handshaken(t, cc, func() (*TLSSocket, error) {
		return NewConnTLSServer(context.Background(), sc, &tls.Config{Certificates: []tls.Certificate{cert}})
	})
	sc.stall(true)
	t.Cleanup(func() { sc.stall(false) }) // ends a wait for the peer if the test fails
	return &shutdownKit{keep: s, peer: cc, transport: ec, resume: func() { sc.stall(false) }}
}

// readPattern reads r to its end, checking it is the pattern stream: it
// returns the count and the error that ended it (nil for io.EOF).
func readPattern(r io.Reader) (int, error) {
	buf := make([]byte, 32<<10)
	want := make([]byte, len(buf))
	off := 0
	for {
		n, err := r.Read(buf)
		pattern(want[:n], off)
		if string(buf[:n]) != string(want[:n]) {
			return off, fmt.Errorf("wrong data at offset %d", off)
		}
		off += n
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// TestTLSShutdownWriteDoesNotWait: sock_shutdown(SHUT_WR) of a TLS stream
// whose peer does not read, with the socket and the send queue full,
// returns at once, as a kernel's shutdown does (the FIN waits behind the
// data): before, it waited for crypto/tls's close_notify, up to 5 s (then
// failed, the stream cut) or, over a channel, for as long as the peer did
// not read. Later writes fail with EPIPE. Once the peer reads, it
// receives all the data, then close_notify (its TLS stream ends before
// its transport's), then, over TCP, the FIN. A fd_close right after the
// shutdown does not cut that short.
func TestTLSShutdownWriteDoesNotWait(t *testing.T) {
	cert := selfSigned(t)
	for _, tr := range []struct {
		name string
		kit  func(*testing.T, tls.Certificate) *shutdownKit
	}{{"tcp", tcpShutdownKit}, {"channel", chanShutdownKit}} {
		for _, thenClose := range []bool{false, true} {
			name := tr.name
			if thenClose {
				name += "-then-close"
			}
			t.Run(name, func(t *testing.T) { testShutdownWrite(t, tr.kit(t, cert), thenClose) })
		}
	}
}

func testShutdownWrite(t *testing.T, k *shutdownKit, thenClose bool) {
	s := k.keep
	if !thenClose {
		defer s.Close()
	}
	written := fillTLS(t, s, true)
	if t.Failed() {
		return
	}
	if !s.w.flushing() {
		t.Fatal("nothing queued after EAGAIN")
	}

	var err error
	within(t, "sock_shutdown(SHUT_WR) of a TLS stream whose peer does not read", func() {
		err = s.Shutdown(ShutWrite)
	})
	if err != nil {
		t.Fatalf("shutdown(SHUT_WR): %v", err)
	}
	for _, nonblock := range []bool{true, false} {
		var n int
		within(t, "a write after shutdown", func() { n, err = s.Write([]byte("more"), nonblock) })
		if n != 0 || !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write (nonblock %v) after shutdown(SHUT_WR) = %d, %v; want EPIPE", nonblock, n, err)
		}
	}
	if _, ok := s.PollFD(true); !ok {
		t.Error("PollFD(write) after shutdown(SHUT_WR): not ready; want ready (a write fails at once)")
	}
	if thenClose {
		within(t, "fd_close after shutdown(SHUT_WR)", func() { s.Close() })
	}

	k.resume()
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := readPattern(k.peer)
		got <- result{n, err}
	}()
	var r result
	select {
	case r = <-got:
	case <-time.After(hangLimit):
		t.Fatal("the peer did not receive the stream's end")
	}
	if r.err != nil || r.n != written {
		t.Fatalf("the peer read %d bytes, then %v; want the %d written, then the end", r.n, r.err, written)
	}
	if k.transport.eof.Load() {
		t.Fatal("the peer's TLS stream ended with its transport: no close_notify")
	}
	if k.raw != nil {
		k.raw.SetReadDeadline(time.Now().Add(hangLimit))
		if n, err := k.raw.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("the peer's TCP read after close_notify = %d, %v; want the FIN (EOF)", n, err)
		}
	}
}
