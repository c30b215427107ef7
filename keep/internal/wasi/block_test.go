package wasi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// TestBlockingCallsCancelled: a guest blocked in a blocking call that
// waits for a peer — fd_read and sock_recv (also peeking) of an idle
// socket or stdin, sock_accept of a plain TCP listener nobody connects
// to, fd_write and sock_send to a peer that does not read — unwinds with
// the run's cause when the run is cancelled, as in poll_oneoff (and a
// blocking sock_accept of a TLS listener). Before, each waited in the
// host for the peer, whatever the run's context said: an embedded Keep
// (keep.Run's context: the containerd shim, the microVM Keep's /init)
// could not be stopped, and Engine.Close gave up on it.
func TestBlockingCallsCancelled(t *testing.T) { eachEngine(t, testBlockingCallsCancelled) }

func testBlockingCallsCancelled(t *testing.T, eng string) {
	in, _, _, _ := pipeStreams(t)
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lst, err := fd.NewTCPListener(context.Background(), l, nil)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lst.Close() })
	l2, _, server := tcpPair(t)
	l2.Close()
	sock, err := fd.NewTCPSocket(server)
	if err != nil {
		t.Fatal(err)
	}
	tlsSock, _ := tlsPair(t)
	e := newEnv(t, eng, in, lst, sock, tlsSock)
	// One 8 KiB iovec to read into; 1024 iovecs of 48 KiB (48 MiB, more
	// than loopback's socket buffers hold) to write.
	e.iov(100, 16384, 8192)
	for i := uint32(0); i < MaxIovecs; i++ {
		e.iov(200+8*i, 16384, memSize-16384)
	}
	for _, c := range []struct {
		what   string
		name   string
		params []uint64
	}{
		{"an idle stdin", "fd_read", []uint64{0, 100, 1, 8}},
		{"a plain TCP listener", "sock_accept", []uint64{1, 0, 16}},
		{"an idle socket", "fd_read", []uint64{2, 100, 1, 8}},
		{"an idle socket", "sock_recv", []uint64{2, 100, 1, 0, 8, 12}},
		{"an idle socket (peeking)", "sock_recv", []uint64{2, 100, 1, recvPeek, 8, 12}},
		{"a peer that does not read", "fd_write", []uint64{2, 200, MaxIovecs, 8}},
		{"a peer that does not read", "sock_send", []uint64{2, 200, MaxIovecs, 0, 8}},
		{"an idle TLS peer", "fd_read", []uint64{3, 100, 1, 8}},
		{"an idle TLS peer (peeking)", "sock_recv", []uint64{3, 100, 1, recvPeek, 8, 12}},
		{"a TLS peer that does not read", "sock_send", []uint64{3, 200, MaxIovecs, 0, 8}},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		stopped := errors.New("run stopped")
		// Cancelled while the call waits (or, on a slow machine, before
		// it starts: it must notice either way).
		timer := time.AfterFunc(20*time.Millisecond, func() { cancel(stopped) })
		type result struct {
			errno Errno
			err   error
		}
		done := make(chan result, 1)
		go func() {
			errno, err, _ := e.s.Call(ctx, e.inst, c.name, c.params...)
			done <- result{errno, err}
		}()
		select {
		case r := <-done:
			if r.errno != EINTR || !errors.Is(r.err, stopped) {
				t.Errorf("blocking %s of %s in a cancelled run = errno %d, unwound with %v; want EINTR and the run's cause",
					c.name, c.what, r.errno, r.err)
			}
		case <-time.After(30 * time.Second): // a safety net, not a verdict on time
			t.Fatalf("blocking %s of %s did not return when the run was cancelled", c.name, c.what)
		}
		timer.Stop()
		cancel(nil)
	}
}

// tlsPair returns the Keep's (server) side of a TLS stream and the
// client's, which neither sends nor reads unless the test makes it.
func tlsPair(t *testing.T) (*fd.TLSSocket, *tls.Conn) {
	_, client, server := tcpPair(t)
	cc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	handshake := make(chan error, 1)
	go func() { handshake <- cc.Handshake() }()
	sock, err := fd.NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	return sock, cc
}

// TestBlockingTLSSendFlushed: a blocking sock_send of a TLS stream,
// which the Keep makes of non-blocking writes (so that a cancelled run
// can interrupt it), returns as a blocking write does: with everything
// written and handed to the TCP socket, nothing left in the Keep's send
// queue, whatever the peer's pace; the peer reads it all, in order.
func TestBlockingTLSSendFlushed(t *testing.T) { eachEngine(t, testBlockingTLSSendFlushed) }

func testBlockingTLSSendFlushed(t *testing.T, eng string) {
	sock, cc := tlsPair(t)
	e := newEnv(t, eng, fd.Null{}, sock)
	const n = memSize - 8192
	for i := uint32(0); i < n; i++ {
		e.mem[8192+i] = byte(i * 7)
	}
	const count = 64 // 3.5 MiB
	for i := uint32(0); i < count; i++ {
		e.iov(200+8*i, 8192, n)
	}
	got := make(chan []byte, 1)
	go func() {
		// A slow reader: small reads, from a peer that starts late.
		time.Sleep(50 * time.Millisecond)
		var all []byte
		buf := make([]byte, 1000)
		for len(all) < count*n {
			m, err := cc.Read(buf)
			all = append(all, buf[:m]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	e.expect(ESUCCESS, "sock_send", 1, 200, count, 0, 8)
	if w := e.u32(8); w != count*n {
		t.Fatalf("sock_send wrote %d of %d bytes", w, count*n)
	}
	if _, flushed := sock.FlushFD(); !flushed {
		t.Fatal("a blocking sock_send returned with ciphertext still queued in the Keep")
	}
	all := <-got
	if len(all) != count*n {
		t.Fatalf("the peer read %d of %d bytes", len(all), count*n)
	}
	for i, b := range all {
		if b != byte((i%n)*7) {
			t.Fatalf("byte %d is %d, want %d", i, b, byte((i%n)*7))
		}
	}
}
