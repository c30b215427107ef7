package wasi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// tlsListener returns a TLS listener on a fresh port, and a function that
// waits until every connection made so far is in its listen backlog (to
// be used before the guest first touches the listener).
func tlsListener(t *testing.T) (*net.TCPListener, *fd.TCPListener, func()) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lst, err := fd.NewTCPListener(context.Background(), l, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lst.Close() })
	queued := func() {
		rc, _ := l.SyscallConn()
		rc.Control(func(h uintptr) {
			pfd := []unix.PollFd{{Fd: int32(h), Events: unix.POLLIN}}
			ts := unix.NsecToTimespec(int64(10 * time.Second))
			if n, _ := unix.Ppoll(pfd, &ts, nil); n != 1 {
				t.Fatal("the connection never reached the listen backlog")
			}
		})
	}
	return l, lst, queued
}

func dial(t *testing.T, l *net.TCPListener) net.Conn {
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAcceptTLSSilentPeer: a TCP peer that connects to a TLS listener and
// sends nothing makes neither poll_oneoff report the listener readable
// (nor spin: it waits to its clock in a few host waits) nor a
// non-blocking sock_accept wait; a TLS client that connects after it is
// reported and accepted while it is still silent.
func TestAcceptTLSSilentPeer(t *testing.T) { eachEngine(t, testAcceptTLSSilentPeer) }

func testAcceptTLSSilentPeer(t *testing.T, eng string) {
	l, lst, queued := tlsListener(t)
	e := newEnv(t, eng, fd.Null{}, lst)
	silent := dial(t, l)
	queued()
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))

	waits := countPpoll(t)
	const subs, events, nev = 1000, 5000, 8
	e.expectOnlyClock(t, waits, 150*time.Millisecond, "a silent peer made the TLS listener readable")
	e.expect(EAGAIN, "sock_accept", 1, 0, 16)

	// A TLS client now: the listener becomes readable, and sock_accept
	// returns it.
	cc := tls.Client(dial(t, l), &tls.Config{InsecureSkipVerify: true})
	handshake := make(chan error, 1)
	go func() { handshake <- cc.Handshake() }()
	waits.Store(0)
	e.sub(subs, 1, tagFdRead, 1, 0, 0)
	e.sub(subs+subSize, 2, tagClock, clockMonotonic, uint64(10*time.Second), 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 2, nev)
	if got := e.events(events, nev); len(got) != 1 || got[0] != 1 {
		t.Fatalf("events %v, want the listener's (1)", got)
	}
	if n := waits.Load(); n > maxWaits {
		t.Fatalf("%d host waits: poll_oneoff spun on the listener", n)
	}
	e.expect(ESUCCESS, "sock_accept", 1, uint64(fd.FlagNonblock), 16)
	nfd := e.u32(16)
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	e.put(1000, []byte("hello"))
	e.iov(100, 1000, 5)
	e.expect(ESUCCESS, "fd_write", uint64(nfd), 100, 1, 8)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("client read %q %v", buf, err)
	}
	// The silent peer is still waiting, not accepted by the guest.
	e.expect(EAGAIN, "sock_accept", 1, 0, 16)
	silent.Close()
}

// TestAcceptTLSCancelled: a blocking sock_accept on a TLS listener waits
// for a completed handshake, not for a silent peer, and unwinds the guest
// when the run is cancelled, as poll_oneoff does.
func TestAcceptTLSCancelled(t *testing.T) { eachEngine(t, testAcceptTLSCancelled) }

func testAcceptTLSCancelled(t *testing.T, eng string) {
	l, lst, queued := tlsListener(t)
	e := newEnv(t, eng, fd.Null{}, lst)
	dial(t, l)
	queued()
	ctx, cancel := context.WithCancelCause(context.Background())
	stopped := errors.New("run stopped")
	go func() {
		// Cancel once sock_accept waits: the silent peer's handshake is
		// under way by then (the listener's descriptor took it).
		for {
			if n, _ := listenBacklog(l); n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel(stopped)
	}()
	errno, err, _ := e.s.Call(ctx, e.inst, "sock_accept", 1, 0, 16)
	if errno != EINTR || !errors.Is(err, stopped) {
		t.Fatalf("sock_accept of a cancelled run = errno %d, unwound with %v; want EINTR and the run's cause", errno, err)
	}
}

// listenBacklog reports whether l has a connection waiting in its backlog
// (1) or not (0).
func listenBacklog(l *net.TCPListener) (int, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	rc.Control(func(h uintptr) {
		pfd := []unix.PollFd{{Fd: int32(h), Events: unix.POLLIN}}
		ts := unix.Timespec{}
		n, err = unix.Ppoll(pfd, &ts, nil)
	})
	return n, err
}
