package fd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pattern fills p with the bytes of a stream at offset off.
func pattern(p []byte, off int) {
	for i := range p {
		p[i] = byte((off + i) % 251)
	}
}

// waitWritable waits the way poll_oneoff does until s is writable: for
// POLLOUT on the descriptor PollFD returns, asking again when it is ready
// (a hint). Wakeups for nothing beyond a few mean poll_oneoff would spin.
func waitWritable(s *TLSSocket) error {
	deadline := time.Now().Add(hangLimit)
	for vain := 0; time.Now().Before(deadline); vain++ {
		fd, ok := s.PollFD(true)
		if ok {
			return nil
		}
		if fd < 0 {
			return errors.New("PollFD(write): not ready and nothing to wait on")
		}
		if vain > 100 {
			return errors.New("PollFD(write) keeps returning a ready descriptor: poll_oneoff would spin")
		}
		if !pollOut(fd, time.Second) {
			vain = 0
		}
	}
	return errors.New("never became writable")
}

// TestTLSNonblockingWriteToStalledPeer: a peer that stops reading must not
// make a non-blocking write wait (the whole guest would wait with it): once
// the socket is full, writes return EAGAIN, poll_oneoff waits for the
// socket, and when the peer reads again every byte arrives, in order.
func TestTLSNonblockingWriteToStalledPeer(t *testing.T) {
	_, client, server := tcpPair(t)
	cc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	go cc.Handshake()
	s, err := NewTLSServer(context.Background(), server, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	written := fillTLS(t, s, false)
	if t.Failed() {
		return
	}
	if fd, ok := s.PollFD(true); ok || fd < 0 {
		t.Fatalf("PollFD(write) of a full socket = %d, %v; want not ready", fd, ok)
	} else if pollOut(fd, 0) {
		t.Fatal("PollFD(write) of a full socket returned a descriptor ready for POLLOUT: poll_oneoff would spin")
	}

	// The peer reads again: what was written, and what follows, arrives.
	total := written + 1<<20
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		want := make([]byte, len(buf))
		off := 0
		for {
			n, err := cc.Read(buf)
			pattern(want[:n], off)
			if string(buf[:n]) != string(want[:n]) {
				got <- errors.New("the peer received other bytes than were written")
				return
			}
			off += n
			if err == io.EOF {
				if off != total {
					err = errors.New("the peer received a short stream")
				} else {
					err = nil
				}
				got <- err
				return
			}
			if err != nil {
				got <- err
				return
			}
		}
	}()
	chunk := make([]byte, 64<<10)
	within(t, "writing the rest", func() {
		for written < total {
			pattern(chunk, written)
			n, err := s.Write(chunk[:min(len(chunk), total-written)], true)
			written += n
			if errors.Is(err, ErrWouldBlock) {
				if err := waitWritable(s); err != nil {
					t.Error(err)
					return
				}
				continue
			}
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
		if err := s.Shutdown(ShutWrite); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangLimit):
		t.Fatal("the peer did not receive the stream")
	}
}

// pollOut reports whether fd is ready for POLLOUT within d, as poll_oneoff
// waits for a write subscription's host descriptor.
func pollOut(fd int, d time.Duration) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	ts := unix.NsecToTimespec(int64(d))
	n, err := unix.Ppoll(pfd, &ts, nil)
	return err == nil && n > 0
}

// fullConn is a memConn whose writability the test sets.
type fullConn struct {
	*memConn
	writable atomic.Bool
}

func (c *fullConn) Writable() bool { return c.writable.Load() }

func (c *fullConn) TryWrite(p []byte) (int, error) {
	if !c.writable.Load() {
		return 0, ErrWouldBlock
	}
	return c.memConn.Write(p)
}

// TestChannelWriteHintWaits: poll_oneoff waits for POLLOUT on the host
// descriptor of a write subscription. A channel stream that cannot take
// more must hand it one that is not ready until the stream may be
// writable; otherwise poll_oneoff spins (wakes, asks PollFD, waits again
// at once) for as long as the host does not read.
func TestChannelWriteHintWaits(t *testing.T) {
	a, _ := memPipe()
	c := &fullConn{memConn: a}
	s, err := NewConnSocket(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fd, ok := s.PollFD(true)
	if ok || fd < 0 {
		t.Fatalf("PollFD(write) of a full stream = %d, %v; want not ready", fd, ok)
	}
	if pollOut(fd, 0) {
		t.Fatal("the host descriptor of a full stream is ready for POLLOUT: poll_oneoff would spin")
	}
	c.writable.Store(true)
	a.mu.Lock()
	notify := a.notify
	a.mu.Unlock()
	notify()
	if !pollOut(fd, time.Second) {
		t.Fatal("a change of the stream did not wake a POLLOUT waiter")
	}
	if _, ok := s.PollFD(true); !ok {
		t.Fatal("a writable stream is not ready")
	}
}

// fillTLS writes pattern bytes to s, a TLS stream whose peer does not
// read, with non-blocking writes until one returns EAGAIN — with settle,
// until one still does once the socket has had 200 ms to take what was
// queued — and returns how many bytes s took. It fails t (and returns)
// if a write fails or 256 MiB go without EAGAIN.
func fillTLS(t *testing.T, s *TLSSocket, settle bool) int {
	t.Helper()
	chunk := make([]byte, 64<<10)
	written := 0
	within(t, "a non-blocking TLS write to a peer that does not read", func() {
		for written < 256<<20 {
			pattern(chunk, written)
			n, err := s.Write(chunk, true)
			written += n
			if errors.Is(err, ErrWouldBlock) {
				if !settle {
					return
				}
				// Full once it stays so (the socket's buffers
				// may still take what was queued).
				fd, ok := s.PollFD(true)
				if !ok && !pollOut(fd, 200*time.Millisecond) {
					return
				}
				continue
			}
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
		t.Errorf("wrote %d bytes to a peer that reads nothing without EAGAIN", written)
	})
	return written
}
