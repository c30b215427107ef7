package hostio

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

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
