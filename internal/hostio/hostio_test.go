package hostio

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
)

func sockopt(t *testing.T, f *os.File, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpen(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	cfg := &config.Config{Files: []config.File{
		{Kind: config.KindNull, Name: "null"},
		{Kind: config.KindStdout, Name: "stdout"},
		{Kind: config.KindListen, Name: "in", Prot: config.ProtTCP, Addr: "127.0.0.1", Port: 0},
		{Kind: config.KindConnect, Name: "out", Prot: config.ProtTCP, Host: "localhost", Port: uint16(peer.Addr().(*net.TCPAddr).Port)},
	}}
	files, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(files)
	if files[0] != nil || files[1] != os.Stdout || !IsStdio(files[1]) {
		t.Fatalf("null/stdout: %v %v", files[0], files[1])
	}
	if sockopt(t, files[2], unix.SO_ACCEPTCONN) != 1 {
		t.Fatal("listen entry is not a listening socket")
	}
	if sockopt(t, files[3], unix.SO_ACCEPTCONN) != 0 {
		t.Fatal("connect entry is listening")
	}
	sa, err := unix.Getpeername(int(files[3].Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if in4, ok := sa.(*unix.SockaddrInet4); !ok || in4.Addr != [4]byte{127, 0, 0, 1} {
		t.Fatalf("localhost connected to %v, want 127.0.0.1", sa)
	}
}

func TestOpenErrorsNameTheEndpoint(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	// Listening on a port in use fails; so does connecting to a closed one.
	cfg := &config.Config{Files: []config.File{{Kind: config.KindListen, Name: "in", Prot: config.ProtTCP, Addr: "127.0.0.1", Port: port}}}
	if _, err := Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("listen on a used port: %v", err)
	}
	l.Close()
	cfg = &config.Config{Files: []config.File{
		{Kind: config.KindStdin, Name: "stdin"},
		{Kind: config.KindConnect, Name: "out", Prot: config.ProtTCP, Host: "127.0.0.1", Port: port},
	}}
	_, err := Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "fd 1") {
		t.Fatalf("connect to a closed port: %v", err)
	}
}

// TestOpenEmptyHost: Enarx.toml allows host = "" (as upstream), but Go
// would dial the local system for it; Open refuses before dialling. The
// first connection the listener on that port accepts must be the test's
// own, made after Open returned.
func TestOpenEmptyHost(t *testing.T) {
	l, err := net.Listen("tcp", ":0") // every local address
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := &config.Config{Files: []config.File{{Kind: config.KindConnect, Name: "up", Prot: config.ProtTCP, Port: uint16(l.Addr().(*net.TCPAddr).Port)}}}
	_, err = Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "failed to connect to endpoint: the host is empty; set files[0].host in Enarx.toml") {
		t.Fatalf("empty host: %v", err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("an empty host was dialled (first connection from %v)", a.RemoteAddr())
	}
}

// TestOpenErrorClosesWhatItOpened: when an entry fails, the listeners and
// connections Open made for the entries before it are closed, so the port
// is free again and the peer sees the connection end.
func TestOpenErrorClosesWhatItOpened(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(free.Addr().(*net.TCPAddr).Port)
	free.Close()
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	cfg := &config.Config{Files: []config.File{
		{Kind: config.KindListen, Name: "in", Prot: config.ProtTCP, Addr: "127.0.0.1", Port: port},
		{Kind: config.KindConnect, Name: "out", Prot: config.ProtTCP, Host: "127.0.0.1", Port: uint16(peer.Addr().(*net.TCPAddr).Port)},
		{Kind: config.KindConnect, Name: "bad", Prot: config.ProtTCP, Port: 1}, // empty host: fails
	}}
	files, err := Open(context.Background(), cfg)
	if err == nil {
		Close(files)
		t.Fatal("Open succeeded with an empty host")
	}
	if files != nil {
		t.Fatalf("Open returned files with an error: %v", files)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatalf("the listener of entry 0 is still open after Open failed: %v", err)
	}
	l.Close()
	c, err := peer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("the connection of entry 1 is still open after Open failed: %d %v", n, err)
	}
}
