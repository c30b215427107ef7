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
	// The other direction and close_notify.
	go func() { s.Write([]byte("reply"), true); s.Shutdown(ShutWrite) }()
	b, err := io.ReadAll(cc)
	if err != nil || string(b) != "reply" {
		t.Fatalf("client read %q %v", b, err)
	}
	cc.Close()
	waitReady(t, s)
	if n, err := s.Read(buf, true); n != 0 || err != io.EOF {
		t.Fatalf("after close_notify: %d %v", n, err)
	}
}

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
	var reported error
	tl.OnHandshakeError = func(_ net.Addr, err error) { reported = err }
	if _, err := tl.Accept(true); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("accept with nothing pending: %v", err)
	}
	c, _ := net.Dial("tcp", l.Addr().String())
	c.Write([]byte("not tls at all\r\n\r\n"))
	defer c.Close()
	if _, err := tl.Accept(false); !errors.Is(err, syscall.ECONNABORTED) || reported == nil {
		t.Fatalf("accept: %v (reported %v)", err, reported)
	}
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
		if _, err := tb.Insert(Null{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Insert(Null{}, 0); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("full table: %v", err)
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
