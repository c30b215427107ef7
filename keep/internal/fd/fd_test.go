package fd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tcpPair(t *testing.T) (*net.TCPListener, *net.TCPConn, *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); c.Close(); s.Close() })
	return l, c, s
}

func selfSigned(t *testing.T) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// waitReady polls p the way poll_oneoff does until it is readable.
func waitReady(t *testing.T, p Poller) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		fd, ok := p.PollFD(false)
		if ok || fd >= 0 && pollWait(fd, 100*time.Millisecond) {
			return
		}
	}
	t.Fatal("never became readable")
}

func pollWait(fd int, d time.Duration) bool {
	pfd := []pollFd{{fd: fd}}
	return poll(pfd, d)
}

func TestTCPSocketNonblocking(t *testing.T) {
	_, client, server := tcpPair(t)
	s, err := NewTCPSocket(server)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, err := s.Read(buf, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty non-blocking read: %v", err)
	}
	client.Write([]byte("abc"))
	waitReady(t, s)
	if n, err := s.Read(buf, true); n != 3 || err != nil {
		t.Fatalf("read %d %v", n, err)
	}
	client.Close()
	if n, err := s.Read(buf, false); n != 0 || err != io.EOF {
		t.Fatalf("after close: %d %v", n, err)
	}
}

// TestTLSBufferedRecordsAreReady pins the TLS readiness rule: records that
// crypto/tls has already pulled off the socket must make the stream
// readable even though the socket itself has nothing more to read.
func TestTLSBufferedRecordsAreReady(t *testing.T) {
	_, client, server := tcpPair(t)
	cert := selfSigned(t)
	cc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	go cc.Handshake()
	s, err := NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	if v := s.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
	// Three small records in one burst: the first read pulls all of them
	// into crypto/tls's buffers.
	for _, m := range []string{"one;", "two;", "three;"} {
		cc.Write([]byte(m))
	}
	var got bytes.Buffer
	buf := make([]byte, 2) // smaller than a record
	if n, err := s.Peek(buf, false); n != 2 || err != nil || string(buf) != "on" {
		t.Fatalf("peek %d %v %q", n, err, buf)
	}
	for got.Len() < len("one;two;three;") {
		n, err := s.Read(buf, true)
		if errors.Is(err, ErrWouldBlock) {
			waitReady(t, s)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(buf[:n])
	}
	if got.String() != "one;two;three;" {
		t.Fatalf("read %q", got.String())
	}
	if _, err := s.Read(buf, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("drained stream: %v", err)
	}
	// The other direction and close_notify. (Streams are used by one
	// goroutine at a time: the reads below wait for this one.)
	wrote := make(chan struct{})
	go func() { defer close(wrote); s.Write([]byte("reply"), true); s.Shutdown(ShutWrite) }()
	b, err := io.ReadAll(cc)
	if err != nil || string(b) != "reply" {
		t.Fatalf("client read %q %v", b, err)
	}
	within(t, "the write and shutdown(SHUT_WR)", func() { <-wrote })
	cc.Close()
	waitReady(t, s)
	if n, err := s.Read(buf, true); n != 0 || err != io.EOF {
		t.Fatalf("after close_notify: %d %v", n, err)
	}
}

// TestTLSListenerRejectsPlainClient: a client that does not speak TLS
// fails its handshake in the background; it is reported and dropped, and
// the guest never sees it (no ECONNABORTED): the next client is accepted.
func TestTLSListenerRejectsPlainClient(t *testing.T) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := NewTCPListener(context.Background(), l, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	reported := make(chan error, 1)
	tl.OnHandshakeError = func(_ net.Addr, err error) { reported <- err }
	if _, err := accept(tl, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("accept with nothing pending: %v", err)
	}
	c, _ := net.Dial("tcp", l.Addr().String())
	c.Write([]byte("not tls at all\r\n\r\n"))
	defer c.Close()
	var herr error
	within(t, "the failed handshake", func() { herr = <-reported })
	if herr == nil {
		t.Fatal("nil handshake error reported")
	}
	if s, err := accept(tl, true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("accept after a failed handshake: %v %v, want EAGAIN", s, err)
	}
	// The peer's connection was closed.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the failed peer's connection: %v", err)
	}
	good := goodClient(t, dialTCP(t, l))
	s := acceptNB(t, tl)
	defer s.Close()
	exchange(t, s, good)
}

func TestTable(t *testing.T) {
	tb := NewTable([]File{Null{}, nil, Null{}})
	if _, err := tb.Get(1); !errors.Is(err, syscall.EBADF) {
		t.Fatal("nil slot is open")
	}
	if n, err := tb.Insert(Null{}, FlagNonblock); n != 1 || err != nil {
		t.Fatalf("insert got fd %d %v, want the lowest free (1)", n, err)
	}
	for i := tb.Len(); i < MaxFDs; i++ {
		if tb.Full() {
			t.Fatalf("Full with %d descriptors", i)
		}
		if _, err := tb.Insert(Null{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Insert(Null{}, 0); !errors.Is(err, syscall.EMFILE) || !tb.Full() {
		t.Fatalf("full table: %v, Full %v", err, tb.Full())
	}
	tb.Close(2)
	if tb.Full() {
		t.Fatal("Full with a closed slot")
	}
	if err := tb.Close(^uint32(0)); !errors.Is(err, syscall.EBADF) {
		t.Fatal(err)
	}
}

func TestStdioDirections(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	in, _ := NewStdio(r, false)
	out, _ := NewStdio(w, true)
	if _, err := in.Write([]byte("x"), false); !errors.Is(err, syscall.EBADF) {
		t.Fatal("stdin writable")
	}
	if _, err := out.Read(make([]byte, 1), false); !errors.Is(err, syscall.EBADF) {
		t.Fatal("stdout readable")
	}
	if _, err := in.Read(make([]byte, 1), true); !errors.Is(err, ErrWouldBlock) {
		t.Fatal("empty pipe readable")
	}
}

// pollFd and poll wait for POLLIN like poll_oneoff does.
type pollFd struct{ fd int }

func poll(fds []pollFd, d time.Duration) bool {
	p := make([]unix.PollFd, len(fds))
	for i, f := range fds {
		p[i] = unix.PollFd{Fd: int32(f.fd), Events: unix.POLLIN}
	}
	ts := unix.NsecToTimespec(int64(d))
	n, err := unix.Ppoll(p, &ts, nil)
	return err == nil && n > 0
}

func TestStdioRegularFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("file data")
	f.Seek(0, 0)
	defer f.Close()
	in, err := NewStdio(f, false)
	if err != nil {
		t.Fatal(err)
	}
	if in.Filetype() != FiletypeRegularFile {
		t.Fatalf("filetype %d", in.Filetype())
	}
	buf := make([]byte, 64)
	if n, err := in.Read(buf, true); err != nil || string(buf[:n]) != "file data" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if n, err := in.Read(buf, true); n != 0 || err != io.EOF {
		t.Fatalf("at end: %d %v", n, err)
	}
}

// TestInsertLimited: a descriptor's rights travel with its entry, through
// fd_renumber too; Insert leaves them to the WASI layer's defaults.
func TestInsertLimited(t *testing.T) {
	tb := NewTable([]File{Null{}, Null{}})
	n, err := tb.InsertLimited(Null{}, FlagAppend, RightFdRead, RightFdWrite)
	if err != nil || n != 2 {
		t.Fatal(n, err)
	}
	e, _ := tb.Get(n)
	if !e.Limited || e.Base != RightFdRead || e.Inheriting != RightFdWrite || e.Flags != FlagAppend {
		t.Fatalf("entry %+v", e)
	}
	if err := tb.Renumber(2, 0); err != nil {
		t.Fatal(err)
	}
	if e, _ := tb.Get(0); !e.Limited || e.Base != RightFdRead {
		t.Fatalf("renumbered entry %+v", e)
	}
	m, _ := tb.Insert(Null{}, 0)
	if e, _ := tb.Get(m); e.Limited {
		t.Fatal("Insert made a limited entry")
	}
	for i := 3; i < MaxFDs; i++ {
		if _, err := tb.Insert(Null{}, 0); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := tb.InsertLimited(Null{}, 0, 0, 0); err != syscall.EMFILE {
		t.Fatalf("a full table: %v", err)
	}
	if RightsAll != 1<<30-1 || RightsDir&(RightFdRead|RightFdWrite|RightFdSeek|RightFdFilestatSetSize) != 0 {
		t.Fatal("rights constants")
	}
}

// memConn is one end of an in-memory Conn pair (a channel stream).
// Writes go to the peer, or into held while hold is set; onWouldBlock,
// if set, runs once when TryRead next finds nothing (as if data arrived
// just then).
type memConn struct {
	mu           sync.Mutex
	cond         *sync.Cond
	in           []byte
	closed       bool
	notify       func()
	peer         *memConn
	hold         bool
	held         []byte
	onWouldBlock func()
}

func memPipe() (*memConn, *memConn) {
	a, b := &memConn{}, &memConn{}
	a.cond, b.cond = sync.NewCond(&a.mu), sync.NewCond(&b.mu)
	a.peer, b.peer = b, a
	return a, b
}

func (c *memConn) deliver(p []byte) {
	c.mu.Lock()
	c.in = append(c.in, p...)
	n := c.notify
	c.cond.Broadcast()
	c.mu.Unlock()
	if n != nil {
		n()
	}
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.in) == 0 && !c.closed {
		c.cond.Wait()
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) TryRead(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.in) == 0 {
		f := c.onWouldBlock
		c.onWouldBlock = nil
		closed := c.closed
		c.mu.Unlock()
		if f != nil {
			f()
		}
		if closed {
			return 0, io.EOF
		}
		return 0, ErrWouldBlock
	}
	defer c.mu.Unlock()
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) Peek(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.in) == 0 {
		return 0, ErrWouldBlock
	}
	return copy(p, c.in), nil
}

func (c *memConn) Readable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in) > 0 || c.closed
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.hold {
		c.held = append(c.held, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	c.peer.deliver(p)
	return len(p), nil
}

func (c *memConn) TryWrite(p []byte) (int, error) { return c.Write(p) }
func (c *memConn) Writable() bool                 { return true }
func (c *memConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}
func (c *memConn) CloseRead() error                 { return nil }
func (c *memConn) CloseWrite() error                { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) SetNotify(f func()) {
	c.mu.Lock()
	c.notify = f
	c.mu.Unlock()
}

// TestTLSOverChannelPartialRecord: ciphertext that arrives while PollFD
// looks (after crypto/tls found too little, before the channel's
// readiness is checked) is still part of a record, not plaintext: PollFD
// reads it and says not ready, with the eventfd cleared so a waiter does
// not wake in vain; the rest of the record makes it ready.
func TestTLSOverChannelPartialRecord(t *testing.T) {
	a, b := memPipe()
	cc := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	s := handshaken(t, cc, func() (*TLSSocket, error) {
		return NewConnTLSServer(context.Background(), a, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	})
	defer s.Close()
	b.mu.Lock()
	b.hold = true
	b.mu.Unlock()
	if _, err := cc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	rec := b.held
	if len(rec) < 20 {
		t.Fatalf("record of %d bytes", len(rec))
	}
	a.deliver(rec[:5])
	a.mu.Lock()
	a.onWouldBlock = func() { a.deliver(rec[5:12]) }
	a.mu.Unlock()
	hostfd, ready := s.PollFD(false)
	if ready || hostfd < 0 {
		t.Fatalf("PollFD with %d of %d bytes of a record = %d, %v; want not ready", 12, len(rec), hostfd, ready)
	}
	if a.Readable() {
		t.Fatal("PollFD left ciphertext unread")
	}
	if pollWait(hostfd, 0) {
		t.Fatal("the eventfd is still set: a waiter would wake for nothing")
	}
	a.deliver(rec[12:])
	if !pollWait(hostfd, 0) {
		t.Fatal("the rest of the record did not set the eventfd")
	}
	if _, ready := s.PollFD(false); !ready {
		t.Fatal("a whole record is not ready")
	}
	buf := make([]byte, 16)
	if n, err := s.Read(buf, true); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
}

// TestPollHints: which host descriptors are only hints.
func TestPollHints(t *testing.T) {
	_, client, server := tcpPair(t)
	tcp, err := NewTCPSocket(server)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := any(tcp).(HintPoller); ok {
		t.Error("a TCP socket's descriptor is a hint")
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	in, _ := NewStdio(r, false)
	if _, ok := any(in).(HintPoller); ok {
		t.Error("stdio's descriptor is a hint")
	}
	cc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	go cc.Handshake()
	ts, err := NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	// For writing, the descriptor is the send queue's eventfd while
	// ciphertext is queued (see sendQueue).
	if !ts.PollHint(false) || !ts.PollHint(true) {
		t.Errorf("TLS over TCP: hints %v (read) %v (write), want true true", ts.PollHint(false), ts.PollHint(true))
	}
	a, _ := memPipe()
	cs, err := NewConnSocket(a)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if !cs.PollHint(false) || !cs.PollHint(true) {
		t.Error("a channel stream's eventfds are not hints")
	}
}
