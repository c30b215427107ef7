package connlimit

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"

	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// server starts an HTTP server (TLS if tlsOn) behind a Listener of max
// connections, no per-address bound.
func server(t *testing.T, max int, tlsOn bool) (*httptest.Server, *Listener) {
	return serverLimits(t, Limits{Max: max}, tlsOn)
}

func serverLimits(t *testing.T, lim Limits, tlsOn bool) (*httptest.Server, *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, lim, nil)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	s.Listener.Close()
	s.Listener = l
	s.Config.ConnState = l.ConnState
	if tlsOn {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s, l
}

// client is one keep-alive connection that sends requests by hand.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *httptest.Server, tlsOn bool) *client {
	t.Helper()
	return dialFrom(t, s, tlsOn, "127.0.0.1")
}

// dialFrom connects from the loopback address from.
func dialFrom(t *testing.T, s *httptest.Server, tlsOn bool, from string) *client {
	t.Helper()
	addr := s.Listener.Addr().String()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	var c net.Conn
	var err error
	if tlsOn {
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
	return &client{c: c, r: bufio.NewReader(c)}
}

// get sends a request and reads the response.
func (c *client) get() error {
	resp, err := testutil.KeepAliveGET(c.c, c.r, "t", "/")
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New("unexpected status " + resp.Status)
	}
	return err
}

// idleCount is how many connections l knows to be idle.
func (l *Listener) idleCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.idle)
}

// waitFor polls cond (the server's state changes on its own goroutines).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleMakesRoom: at the bound, a new connection is admitted by closing
// the connection idle longest; the others keep working. Without the
// Listener's ConnState the server would hold every idle connection and the
// third client would wait.
func TestIdleMakesRoom(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			s, l := server(t, 2, tlsOn)
			a, b := dial(t, s, tlsOn), dial(t, s, tlsOn)
			if err := a.get(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a idle", func() bool { return l.idleCount() == 1 })
			if err := b.get(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a and b idle", func() bool { return l.idleCount() == 2 })

			c := dial(t, s, tlsOn)
			if err := c.get(); err != nil {
				t.Fatalf("third connection at the bound: %v", err)
			}
			// a, idle longest, was closed to make room.
			if err := a.get(); err == nil {
				t.Error("the longest-idle connection still served a request")
			}
			if err := b.get(); err != nil {
				t.Errorf("b: %v", err)
			}
			if n := l.Open(); n > 2 {
				t.Errorf("%d connections open, bound 2", n)
			}
		})
	}
}

// TestBusyWaits: when no connection is idle, a new one waits until one
// ends, and is then served.
func TestBusyWaits(t *testing.T) {
	s, l := server(t, 1, false)
	a := dial(t, s, false)
	// a is admitted and busy: its request header is not complete.
	if _, err := io.WriteString(a.c, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a admitted", func() bool { return l.Open() == 1 })
	b := dial(t, s, false) // the kernel completes the handshake; Accept waits
	done := make(chan error, 1)
	go func() { done <- b.get() }()
	select {
	case err := <-done:
		t.Fatalf("served past the bound while every connection was busy (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	a.c.Close()
	if err := <-done; err != nil {
		t.Fatalf("after a ended: %v", err)
	}
}

// TestCloseWakesAccept: closing the listener ends an Accept that holds a
// connection back at the bound (and closes that connection).
func TestCloseWakesAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Limits{Max: 1}, nil)
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept = %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Accept did not return after Close")
	}
	clients[1].SetReadDeadline(time.Now().Add(time.Minute)) // hang guard
	if _, err := clients[1].Read(make([]byte, 1)); err == nil {
		t.Error("the connection held back at the bound was not closed")
	}
	// Closing a connection twice releases its slot once.
	first.Close()
	first.Close()
	if n := l.Open(); n != 0 {
		t.Errorf("open = %d after the only connection closed", n)
	}
}

// TestPerIP: one address holds at most PerIP connections: its idle ones
// make room first, then its new ones are closed at once, while another
// address is served.
func TestPerIP(t *testing.T) {
	s, l := serverLimits(t, Limits{Max: 10, PerIP: 2}, false)
	a, b := dial(t, s, false), dial(t, s, false)
	if err := a.get(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a idle", func() bool { return l.idleCount() == 1 })
	// b busy: its request header is not complete.
	if _, err := io.WriteString(b.c, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, false)
	if err := c.get(); err != nil {
		t.Fatalf("a third connection of the address, with one idle: %v", err)
	}
	if err := a.get(); err == nil {
		t.Error("the address's idle connection still served a request")
	}
	// b and c hold the address's two slots; c gives its slot to f, which
	// is busy in its first request header as b is.
	c.c.Close()
	waitFor(t, "c closed", func() bool { return l.Open() == 1 })
	f := dial(t, s, false)
	if _, err := io.WriteString(f.c, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "f admitted", func() bool { return l.Open() == 2 })
	d := dial(t, s, false)
	if err := d.get(); err == nil {
		t.Fatal("a connection over the address's bound was served while its others were busy")
	}
	// Another address is not held back.
	e := dialFrom(t, s, false, "127.0.0.2")
	if err := e.get(); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1:1", "192.0.2.1:2", true},
		{"192.0.2.1:1", "192.0.2.2:1", false},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:1", true},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:7", true},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", false},
	} {
		ka := addrKey(&net.TCPAddr{IP: net.ParseIP(host(tc.a)), Port: 1})
		kb := addrKey(&net.TCPAddr{IP: net.ParseIP(host(tc.b)), Port: 2})
		if (ka == kb) != tc.same {
			t.Errorf("%s, %s: keys %v, %v; same = %v, want %v", tc.a, tc.b, ka, kb, ka == kb, tc.same)
		}
	}
}

func host(hp string) string {
	h, _, _ := net.SplitHostPort(hp)
	return h
}
