package fd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// accept is l.Accept as a guest's sock_accept calls it.
func accept(l Listener, nonblock bool) (Socket, error) {
	return l.Accept(context.Background(), nonblock)
}

// hangLimit only detects a hang (an accept waiting for a peer that says
// nothing); no test result depends on timing otherwise.
const hangLimit = 10 * time.Second

// within runs f, failing the test if it does not return within hangLimit.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(hangLimit):
		t.Fatalf("%s still waits after %v: it waits for a silent peer", what, hangLimit)
	}
}

// expectEAGAIN checks that a non-blocking accept of l returns EAGAIN,
// without waiting.
func expectEAGAIN(t *testing.T, l Listener, what string) {
	t.Helper()
	var s Socket
	var err error
	within(t, what, func() { s, err = accept(l, true) })
	if !errors.Is(err, ErrWouldBlock) {
		t.Errorf("%s = %v, %v; want EAGAIN", what, s, err)
	}
}

// acceptNB accepts from a non-blocking l the way a guest's event loop
// does: sock_accept, and on EAGAIN poll_oneoff, again.
func acceptNB(t *testing.T, l Listener) Socket {
	t.Helper()
	var s Socket
	var err error
	within(t, "a non-blocking accept loop", func() {
		for {
			if s, err = accept(l, true); !errors.Is(err, ErrWouldBlock) {
				return
			}
			for {
				fd, ok := l.PollFD(false)
				if ok || pollWait(fd, time.Second) {
					break
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return s
}

func dialTCP(t *testing.T, l *net.TCPListener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// goodClient starts a TLS client handshake on c.
func goodClient(t *testing.T, c net.Conn) *tls.Conn {
	cc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"x"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cc.Handshake()
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return cc
}

// exchange checks that s is good's connection: bytes pass both ways.
func exchange(t *testing.T, s Socket, good *tls.Conn) {
	t.Helper()
	if _, err := good.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := s.Read(buf, false); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}
	if _, err := s.Write([]byte("pong"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q %v", buf, err)
	}
}

// stallConn lets a TLS client send its ClientHello, then blocks its next
// write (after the server's whole flight arrived) until released: the
// server's handshake is then under way, waiting for the client.
type stallConn struct {
	net.Conn
	mu       sync.Mutex
	writes   int
	inFlight chan struct{}
	release  chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	n := c.writes
	c.mu.Unlock()
	if n == 2 {
		close(c.inFlight)
		<-c.release
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// stallingClient starts a client whose handshake stalls on c; the
// channel is closed once the server's handshake is under way.
func stallingClient(t *testing.T, c net.Conn) <-chan struct{} {
	sc := &stallConn{Conn: c, inFlight: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(sc, &tls.Config{InsecureSkipVerify: true}).Handshake()
	}()
	t.Cleanup(func() { close(sc.release); c.Close(); <-done })
	return sc.inFlight
}

// memAcceptor is an in-memory Acceptor (a microVM listen entry's queue).
type memAcceptor struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []Conn
	closed bool
	notify func()
}

func newMemAcceptor() *memAcceptor {
	a := &memAcceptor{}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// dial queues a new connection and returns the client's end.
func (a *memAcceptor) dial() *memConn {
	server, client := memPipe()
	a.mu.Lock()
	a.q = append(a.q, server)
	n := a.notify
	a.cond.Broadcast()
	a.mu.Unlock()
	if n != nil {
		n()
	}
	return client
}

func (a *memAcceptor) queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.q)
}

func (a *memAcceptor) Accept() (Conn, error) {
	a.mu.Lock()
	for len(a.q) == 0 && !a.closed {
		a.cond.Wait()
	}
	a.mu.Unlock()
	return a.TryAccept()
}

func (a *memAcceptor) TryAccept() (Conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, net.ErrClosed
	}
	if len(a.q) == 0 {
		return nil, ErrWouldBlock
	}
	c := a.q[0]
	a.q = a.q[1:]
	return c, nil
}

func (a *memAcceptor) Pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.q) > 0 || a.closed
}

func (a *memAcceptor) SetNotify(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notify = f
	if f != nil {
		f()
	}
}

func (a *memAcceptor) Close() error {
	a.mu.Lock()
	q := a.q
	a.q, a.closed = nil, true
	a.cond.Broadcast()
	a.mu.Unlock()
	for _, c := range q {
		c.Close()
	}
	return nil
}

// tlsKit is a TLS listener of one kind with a way to connect to it.
type tlsKit struct {
	l Listener
	// dial connects a client and returns its end.
	dial func() net.Conn
	// queued waits until every connection dialled so far waits to be
	// accepted (only before the listener is first used: afterwards the
	// Keep may take them at any time).
	queued func()
	// closed reports whether the Keep's end of c is closed.
	closed func(c net.Conn) bool
}

// tlsKits runs test on a TLS TCPListener and a TLS ConnListener.
func tlsKits(t *testing.T, test func(t *testing.T, k *tlsKit)) {
	cfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"x"}}
	t.Run("tcp", func(t *testing.T) {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		tl, err := NewTCPListener(context.Background(), l, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tl.Close() })
		test(t, &tlsKit{
			l:    tl,
			dial: func() net.Conn { return dialTCP(t, l) },
			queued: func() {
				rc, _ := l.SyscallConn()
				rc.Control(func(fd uintptr) {
					pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
					ts := unix.NsecToTimespec(int64(hangLimit))
					if n, _ := unix.Ppoll(pfd, &ts, nil); n != 1 {
						t.Fatal("the connection never reached the listen backlog")
					}
				})
			},
			closed: func(c net.Conn) bool {
				// Read to the end (past any session tickets).
				c.SetReadDeadline(time.Now().Add(hangLimit))
				_, err := io.Copy(io.Discard, c)
				var ne net.Error
				return !(errors.As(err, &ne) && ne.Timeout())
			},
		})
	})
	t.Run("conn", func(t *testing.T) {
		a := newMemAcceptor()
		cl, err := NewConnListener(context.Background(), a, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		test(t, &tlsKit{
			l: cl,
			dial: func() net.Conn {
				c := a.dial()
				t.Cleanup(func() { c.Close() })
				return c
			},
			queued: func() {},
			closed: func(c net.Conn) bool {
				p := c.(*memConn).peer
				p.mu.Lock()
				defer p.mu.Unlock()
				return p.closed
			},
		})
	})
}

// TestTLSAcceptSilentPeer: a peer that connects and sends nothing does not
// keep a non-blocking sock_accept waiting, nor a well-behaved client that
// comes after it from being accepted: the guest gets that client while
// the first peer is still silent.
func TestTLSAcceptSilentPeer(t *testing.T) {
	tlsKits(t, func(t *testing.T, k *tlsKit) {
		silent := k.dial()
		k.queued()
		expectEAGAIN(t, k.l, "a non-blocking accept with a silent peer")
		good := goodClient(t, k.dial())
		s := acceptNB(t, k.l)
		defer s.Close()
		exchange(t, s, good)
		if p := s.(*TLSSocket).ConnectionState().NegotiatedProtocol; p != "x" {
			t.Errorf("ALPN %q", p)
		}
		// The silent peer was not accepted by the guest, nor dropped.
		expectEAGAIN(t, k.l, "a second accept")
		silent.Close()
	})
}

// TestTLSAcceptOnlySilentPeers: with only silent peers connected, a
// non-blocking accept returns EAGAIN at once (each time) and the listener
// is not readable: its host descriptor does not wake a poller.
func TestTLSAcceptOnlySilentPeers(t *testing.T) {
	tlsKits(t, func(t *testing.T, k *tlsKit) {
		for range 3 {
			k.dial()
		}
		k.queued()
		for range 3 {
			expectEAGAIN(t, k.l, "a non-blocking accept with silent peers")
		}
		fd, ready := k.l.PollFD(false)
		if ready || fd < 0 {
			t.Fatalf("PollFD = %d, %v; want a descriptor, not ready", fd, ready)
		}
		if pollWait(fd, 50*time.Millisecond) {
			if _, ready := k.l.PollFD(false); ready {
				t.Fatal("silent peers made the listener readable")
			}
			if pollWait(fd, 0) {
				t.Fatal("PollFD left the hint set: a poller would spin")
			}
		}
	})
}

// TestTLSAcceptBlocking: a blocking accept waits for a completed
// handshake, past a silent peer, and ends with the run.
func TestTLSAcceptBlocking(t *testing.T) {
	tlsKits(t, func(t *testing.T, k *tlsKit) {
		k.dial()
		k.queued()
		ctx, cancel := context.WithCancelCause(context.Background())
		stopped := errors.New("run stopped")
		cancel(stopped)
		var s Socket
		var err error
		within(t, "a blocking accept of a cancelled run", func() { s, err = k.l.Accept(ctx, false) })
		if !errors.Is(err, stopped) {
			t.Errorf("accept = %v, %v; want the run's cause", s, err)
		}
		good := goodClient(t, k.dial())
		within(t, "a blocking accept", func() { s, err = accept(k.l, false) })
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		exchange(t, s, good)
	})
}

// TestTLSListenerCloseInFlight: closing a listener with handshakes under
// way stops them, closes their connections and those done but not
// accepted, and leaves no goroutine behind.
func TestTLSListenerCloseInFlight(t *testing.T) {
	tlsKits(t, func(t *testing.T, k *tlsKit) {
		base := runtime.NumGoroutine()
		var stalled []net.Conn
		var inFlight []<-chan struct{}
		for range 4 {
			c := k.dial()
			stalled = append(stalled, c)
			inFlight = append(inFlight, stallingClient(t, c))
		}
		silent := k.dial()
		k.queued()
		expectEAGAIN(t, k.l, "a non-blocking accept with stalled peers")
		within(t, "the handshakes", func() {
			for _, c := range inFlight {
				<-c
			}
		})
		// One done and never accepted.
		good := goodClient(t, k.dial())
		waitReady(t, k.l)
		if err := k.l.Close(); err != nil {
			t.Fatal(err)
		}
		for i, c := range append(stalled, silent, good.NetConn()) {
			if !k.closed(c) {
				t.Errorf("connection %d left open", i)
			}
		}
		// Close waited for the Keep's goroutines, which at most are
		// still returning: none is left, and what remains are the
		// clients' (one each for the stalled ones, one for the good one
		// until its handshake returns).
		listeners := func(st string) bool {
			return strings.Contains(st, "fd.(*handshaker)") || strings.Contains(st, "acceptLoop")
		}
		slack := len(stalled) + 3
		deadline := time.Now().Add(hangLimit)
		for (listeners(stacks()) || runtime.NumGoroutine() > base+slack) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if st := stacks(); listeners(st) {
			t.Fatalf("goroutines of the listener are left after Close:\n%s", st)
		}
		if n := runtime.NumGoroutine(); n > base+slack {
			t.Fatalf("%d goroutines, %d before:\n%s", n, base, stacks())
		}
	})
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// TestTLSListenerBound: at most MaxPendingHandshakes connections are taken
// from the listener's queue; the others wait there until a slot frees.
func TestTLSListenerBound(t *testing.T) {
	a := newMemAcceptor()
	cl, err := NewConnListener(context.Background(), a, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	failed := make(chan struct{}, 1)
	cl.OnHandshakeError = func(net.Addr, error) { failed <- struct{}{} }
	var clients []*memConn
	for range MaxPendingHandshakes + 3 {
		c := a.dial()
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	if _, err := accept(cl, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("accept: %v", err)
	}
	within(t, "taking connections", func() {
		for a.queued() > 3 {
			runtime.Gosched()
		}
	})
	if n := len(cl.hs.slots); n != MaxPendingHandshakes {
		t.Fatalf("%d slots taken", n)
	}
	// A peer that fails its handshake frees a slot for the next.
	clients[0].Write([]byte("not TLS at all, not TLS at all"))
	within(t, "the failed handshake", func() { <-failed })
	within(t, "taking the next connection", func() {
		for a.queued() > 2 {
			runtime.Gosched()
		}
	})
	if a.queued() != 2 {
		t.Fatalf("%d connections left in the queue, want 2", a.queued())
	}
}
