package fd

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// readvLike reads into bufs as the WASI layer's fd_read and sock_recv do
// (keep/internal/wasi, System.readv, data already there): one
// non-blocking Read per iovec until one is short, an error after data
// dropped (readv(2) reports it on the next call).
func readvLike(st Stream, bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		n, err := st.Read(b, true)
		total += n
		if err != nil {
			if total > 0 || errors.Is(err, io.EOF) {
				return total, nil
			}
			return 0, err
		}
		if n < len(b) {
			break
		}
	}
	return total, nil
}

// TestTCPResetAfterDataIsNotEOF: a peer that sends data and then resets
// the connection (close with SO_LINGER 0) must not read as a clean end
// when the guest reads with several iovecs. The data fills the first
// iovecs exactly, so the read into the next one meets the reset, and the
// WASI layer returns the data and drops that error; the kernel reports a
// reset to one read only, then end-of-file, so the next fd_read saw a
// clean end and the guest took a cut stream for a whole one.
func TestTCPResetAfterDataIsNotEOF(t *testing.T) {
	_, client, server := tcpPair(t)
	s, err := NewTCPSocket(server)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 10)
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := client.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	client.Close() // RST

	// Wait until the reset has arrived (POLLERR), behind the data.
	within(t, "the peer's reset", func() {
		for {
			pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
				t.Errorf("poll: %v", err)
				return
			}
			if pfd[0].Revents&unix.POLLERR != 0 {
				return
			}
		}
	})
	if t.Failed() {
		return
	}

	bufs := [][]byte{make([]byte, 50), make([]byte, 50), make([]byte, 50)}
	n, err := readvLike(s, bufs)
	if err != nil || n != len(msg) {
		t.Fatalf("fd_read with 3 iovecs = %d, %v; want the %d bytes sent", n, err, len(msg))
	}
	if got := bytes.Join(bufs[:2], nil); !bytes.Equal(got, msg) {
		t.Fatalf("fd_read read %q, want %q", got, msg)
	}
	for _, nonblock := range []bool{true, false, true} {
		var n int
		var err error
		within(t, "a read after the reset", func() { n, err = s.Read(make([]byte, 50), nonblock) })
		if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read (nonblock %v) after the data of a reset connection = %d, %v; want ECONNRESET", nonblock, n, err)
		}
	}
	if n, err := s.Peek(make([]byte, 50), true); n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peek after the reset = %d, %v; want ECONNRESET", n, err)
	}
}
