package microvm

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
)

// relayPair connects a host Mux and a Keep Mux over a socketpair, opens a
// stream from the host as a listen entry's connection would be, and a TCP
// connection on loopback: the host's end for relay and the remote end.
func relayPair(t *testing.T) (host *channel.Mux, hostSt, keepSt *channel.Stream, c *net.TCPConn, remote net.Conn) {
	t.Helper()
	a, b := socketPair(t)
	opened := make(chan *channel.Stream, 1)
	host = channel.New(a, channel.Host, channel.Handler{})
	k := channel.New(b, channel.Guest, channel.Handler{Open: func(s *channel.Stream, _ channel.Open) error {
		opened <- s
		return nil
	}})
	go host.Run()
	go k.Run()
	t.Cleanup(func() { host.Close(); k.Close() })
	hostSt, err := host.Open(channel.Open{Role: channel.RoleFile, FD: 3})
	if err != nil {
		t.Fatal(err)
	}
	keepSt = <-opened

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	remote, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Close() })
	hc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return host, hostSt, keepSt, hc.(*net.TCPConn), remote
}

// socketPair is a connected pair of unix stream sockets, as the host's
// channel to QEMU.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "channel")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// TestRelayEndsWhenTheKeepEnds: relay copies a TCP connection and a
// stream both ways until both directions have ended. When the Keep can
// read nothing more of what the host relays (it closed its end of the
// stream, or the channel ended after the Keep's half-close), the host
// must stop reading the connection and release it, its stream and its
// goroutines, even if the remote end stays open and silent; it used to
// wait for the remote end to send or close, forever for one that does
// neither, beyond the end of the session.
func TestRelayEndsWhenTheKeepEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(host *channel.Mux, keepSt *channel.Stream)
		// after runs once the remote end has read the end of the
		// stream.
		after func(host *channel.Mux, keepSt *channel.Stream)
	}{
		{"the Keep closes the stream", func(_ *channel.Mux, k *channel.Stream) { k.Close() }, nil},
		{"the channel ends after the Keep's half-close", func(_ *channel.Mux, k *channel.Stream) { k.CloseWrite() },
			func(h *channel.Mux, _ *channel.Stream) { h.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, hostSt, keepSt, c, remote := relayPair(t)
			done := make(chan struct{})
			go func() { relay(c, hostSt); close(done) }()
			if _, err := keepSt.Write([]byte("bye")); err != nil {
				t.Fatal(err)
			}
			tc.end(host, keepSt)
			// The remote end reads what the Keep sent and the end of
			// it, and then stays open and says nothing.
			got, err := io.ReadAll(remote)
			if err != nil || string(got) != "bye" {
				t.Fatalf("the remote end read %q, %v", got, err)
			}
			if tc.after != nil {
				tc.after(host, keepSt)
			}
			select {
			case <-done:
			case <-time.After(20 * time.Second): // a safety net: it ends at once
				t.Fatal("relay still runs: the host holds the connection of a stream the Keep can no longer read")
			}
		})
	}
}
