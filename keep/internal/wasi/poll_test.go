package wasi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// countPpoll counts the host waits of poll_oneoff until the test ends.
func countPpoll(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	orig := ppoll
	ppoll = func(fds []unix.PollFd, ts *unix.Timespec, sigmask *unix.Sigset_t) (int, error) {
		n.Add(1)
		return orig(fds, ts, sigmask)
	}
	t.Cleanup(func() { ppoll = orig })
	return &n
}

// maxWaits bounds the host waits of one poll_oneoff in these tests: each
// needs two or three (a wakeup, then the wait to the deadline), a few
// more if a signal interrupts one; a loop that spun on a hint would make
// thousands.
const maxWaits = 10

// expectOnlyClock polls for reading on fd 1 and a clock of timeout, and
// fails unless only the clock fires, no sooner than timeout, in at most
// maxWaits host waits (waits counts them, countPpoll): what a hint that
// woke for nothing must not turn into an event, nor a spin. why says what
// the unwanted read event would mean.
func (e *env) expectOnlyClock(t *testing.T, waits *atomic.Int64, timeout time.Duration, why string) {
	t.Helper()
	const subs, events, nev = 1000, 5000, 8
	e.sub(subs, 1, tagFdRead, 1, 0, 0)
	e.sub(subs+subSize, 2, tagClock, clockMonotonic, uint64(timeout), 0)
	start := time.Now()
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 2, nev)
	if got := e.events(events, nev); len(got) != 1 || got[0] != 2 {
		t.Fatalf("events %v, want only the clock's (2): %s", got, why)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("the clock fired after %v, before its %v", d, timeout)
	}
	if n := waits.Load(); n > maxWaits {
		t.Fatalf("%d host waits: poll_oneoff spun (%s)", n, why)
	}
}

// events returns the userdata of the events poll_oneoff wrote.
func (e *env) events(out, nev uint32) []uint64 {
	var uds []uint64
	for i := 0; i < int(e.u32(nev)); i++ {
		ud, errno, _ := e.event(out, i)
		if errno != 0 {
			e.t.Fatalf("event %d: errno %d", ud, errno)
		}
		uds = append(uds, ud)
	}
	return uds
}

// after runs f after d, in the background; the test waits for it.
func after(t *testing.T, d time.Duration, f func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(d)
		f()
	}()
	t.Cleanup(wg.Wait)
}

// chanConn is an fd.Conn whose readiness the test sets, as a channel
// stream's changes: every change calls the notify function, whichever
// direction it concerns.
type chanConn struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in       []byte
	writable bool
	closed   bool
	notify   func()
}

func newChanConn() *chanConn {
	c := &chanConn{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// change applies f under the lock, then notifies.
func (c *chanConn) change(f func()) {
	c.mu.Lock()
	f()
	n := c.notify
	c.cond.Broadcast()
	c.mu.Unlock()
	if n != nil {
		n()
	}
}

func (c *chanConn) Read(p []byte) (int, error) {
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

func (c *chanConn) TryRead(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.in) == 0 {
		if c.closed {
			return 0, io.EOF
		}
		return 0, fd.ErrWouldBlock
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *chanConn) Peek(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.in) == 0 {
		return 0, fd.ErrWouldBlock
	}
	return copy(p, c.in), nil
}

func (c *chanConn) Readable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in) > 0 || c.closed
}

func (c *chanConn) Writable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writable
}

func (c *chanConn) Write(p []byte) (int, error)    { return len(p), nil }
func (c *chanConn) TryWrite(p []byte) (int, error) { return len(p), nil }
func (c *chanConn) Close() error                   { c.change(func() { c.closed = true }); return nil }
func (c *chanConn) CloseRead() error               { return nil }
func (c *chanConn) CloseWrite() error              { return nil }
func (c *chanConn) LocalAddr() net.Addr            { return &net.TCPAddr{} }
func (c *chanConn) RemoteAddr() net.Addr           { return &net.TCPAddr{} }
func (c *chanConn) SetDeadline(time.Time) error    { return nil }
func (c *chanConn) SetReadDeadline(time.Time) error {
	return nil
}
func (c *chanConn) SetWriteDeadline(time.Time) error { return nil }

func (c *chanConn) SetNotify(f func()) {
	c.mu.Lock()
	c.notify = f
	c.mu.Unlock()
}

// TestPollChannelHint: a channel stream's notify sets both of its
// eventfds on any change, so a change of the write side wakes a read
// subscription. poll_oneoff must ask the stream again and go on waiting,
// to the deadline, instead of telling the guest it is readable (a guest
// that then reads blocks there). Then real readiness of either side does
// make its event.
func TestPollChannelHint(t *testing.T) { eachEngine(t, testPollChannelHint) }

func testPollChannelHint(t *testing.T, eng string) {
	c := newChanConn()
	sock, err := fd.NewConnSocket(c)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, eng, fd.Null{}, sock)
	waits := countPpoll(t)
	const subs, events, nev = 1000, 5000, 8
	timeout := 150 * time.Millisecond

	// The write side becomes writable, and then not, and again: each a
	// notify, none a read event.
	after(t, 20*time.Millisecond, func() {
		c.change(func() { c.writable = true })
		c.change(func() { c.writable = false })
	})
	e.expectOnlyClock(t, waits, timeout, "a write-side change woke the read subscription")

	// Writable for real: the write subscription fires, the read one not.
	after(t, 20*time.Millisecond, func() { c.change(func() { c.writable = true }) })
	e.sub(subs, 1, tagFdRead, 1, 0, 0)
	e.sub(subs+subSize, 3, tagFdWrite, 1, 0, 0)
	e.sub(subs+2*subSize, 2, tagClock, clockMonotonic, uint64(10*time.Second), 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 3, nev)
	if got := e.events(events, nev); len(got) != 1 || got[0] != 3 {
		t.Fatalf("events %v, want the write subscription's (3)", got)
	}

	// Data arrives: the read subscription fires, and a read gets it.
	after(t, 20*time.Millisecond, func() { c.change(func() { c.in = append(c.in, "data"...) }) })
	e.sub(subs, 1, tagFdRead, 1, 0, 0)
	e.sub(subs+subSize, 2, tagClock, clockMonotonic, uint64(10*time.Second), 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 2, nev)
	if got := e.events(events, nev); len(got) != 1 || got[0] != 1 {
		t.Fatalf("events %v, want the read subscription's (1)", got)
	}
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	e.iov(100, 2000, 16)
	e.expect(ESUCCESS, "fd_read", 1, 100, 1, 8)
	if b, _ := e.mem.Read(2000, 4); e.u32(8) != 4 || string(b) != "data" {
		t.Fatalf("read %d %q", e.u32(8), b)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// holdConn is a client's TCP connection whose writes can be held back,
// to send a TLS record in pieces.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held []byte
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestPollTLSPartialRecord: part of a TLS record makes the TCP socket
// under a TLS stream readable, but no plaintext. poll_oneoff must not
// report the stream readable, and must not spin either (the stream reads
// what arrived, so the socket stops being readable): it waits to its
// deadline in a few host waits. The rest of the record makes the event.
func TestPollTLSPartialRecord(t *testing.T) { eachEngine(t, testPollTLSPartialRecord) }

func testPollTLSPartialRecord(t *testing.T, eng string) {
	_, client, server := tcpPair(t)
	hc := &holdConn{Conn: client}
	cc := tls.Client(hc, &tls.Config{InsecureSkipVerify: true})
	handshake := make(chan error, 1)
	go func() { handshake <- cc.Handshake() }()
	sock, err := fd.NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	hc.mu.Lock()
	hc.hold = true
	hc.mu.Unlock()
	if _, err := cc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	record := hc.held
	if len(record) < 10 {
		t.Fatalf("record of %d bytes", len(record))
	}

	e := newEnv(t, eng, fd.Null{}, sock)
	waits := countPpoll(t)
	const subs, events, nev = 1000, 5000, 8
	timeout := 150 * time.Millisecond
	after(t, 20*time.Millisecond, func() { client.Write(record[:len(record)/2]) })
	e.expectOnlyClock(t, waits, timeout, "half a record made the TLS stream readable")

	after(t, 20*time.Millisecond, func() { client.Write(record[len(record)/2:]) })
	e.sub(subs, 1, tagFdRead, 1, 0, 0)
	e.sub(subs+subSize, 2, tagClock, clockMonotonic, uint64(10*time.Second), 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 2, nev)
	if got := e.events(events, nev); len(got) != 1 || got[0] != 1 {
		t.Fatalf("events %v, want the read subscription's (1)", got)
	}
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	e.iov(100, 2000, 16)
	e.expect(ESUCCESS, "fd_read", 1, 100, 1, 8)
	if b, _ := e.mem.Read(2000, 5); e.u32(8) != 5 || string(b) != "hello" {
		t.Fatalf("read %d %q", e.u32(8), b)
	}
}
