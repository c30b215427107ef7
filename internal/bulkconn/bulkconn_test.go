package bulkconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// countingConn records the size of every write that reaches the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func pipe(t *testing.T) (*Conn, *countingConn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	cc := &countingConn{Conn: a}
	return Wrap(cc), cc, b
}

func TestHoldBatchesAndPreservesOrder(t *testing.T) {
	c, cc, peer := pipe(t)
	var want bytes.Buffer
	got := make(chan []byte)
	total := 1<<20 + 3 + 2*BatchSize
	go func() {
		b := make([]byte, total)
		io.ReadFull(peer, b)
		got <- b
	}()
	write := func(n int) {
		p := make([]byte, n)
		rand.Read(p)
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	write(1) // straight through
	c.Hold()
	for range 64 {
		write(16 << 10) // 1 MiB in records
	}
	write(2 * BatchSize) // larger than a batch: flush, then straight through
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	write(2)
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatal("bytes reordered or lost")
	}
	for i, n := range cc.writes {
		if i > 0 && i < len(cc.writes)-2 && n < BatchSize/2 {
			t.Errorf("write %d of %d bytes while held: %v", i, n, cc.writes)
			break
		}
	}
	if len(cc.writes) > 8 {
		t.Errorf("%d writes for %d bytes: %v", len(cc.writes), total, cc.writes)
	}
}

func TestReleaseWithoutHoldAndNesting(t *testing.T) {
	c, _, peer := pipe(t)
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	c.Hold()
	c.Hold()
	c.Write([]byte("ab"))
	go c.Release() // the inner release flushes what is batched so far
	b := make([]byte, 2)
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "ab" {
		t.Fatalf("inner release: %q %v", b, err)
	}
	c.Write([]byte("cd"))
	released := make(chan struct{})
	go func() { c.Release(); close(released) }()
	if _, err := io.ReadFull(peer, b); err != nil || string(b) != "cd" {
		t.Fatalf("outer release: %q %v", b, err)
	}
	<-released
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wbuf != nil {
		t.Error("batch kept after the last release")
	}
}

func TestWriteErrorReported(t *testing.T) {
	c, _, peer := pipe(t)
	peer.Close()
	c.Hold()
	c.Write(make([]byte, 10))
	if err := c.Release(); err == nil {
		t.Error("Release hid the write error")
	}
	c.Hold()
	if _, err := c.Write(make([]byte, 3*BatchSize)); err == nil {
		t.Error("Write hid the write error")
	}
	c.Release()
}

func TestReadBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := Wrap(a, WithReadBuffer(64))
	go b.Write([]byte("hello, world"))
	p := make([]byte, 5)
	if _, err := io.ReadFull(c, p); err != nil || string(p) != "hello" {
		t.Fatalf("%q %v", p, err)
	}
	b.Close()
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != ", world" {
		t.Fatalf("%q %v", rest, err)
	}
}

// TestHTTPS serves a large body over TLS from a held connection and fetches
// it through DialTLS: the bytes arrive intact, small responses are not
// held back, and the handler finds its Conn.
func TestHTTPS(t *testing.T) {
	body := make([]byte, 3<<20+17)
	rand.Read(body)
	found := make(chan bool, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bc := FromContext(r.Context())
		found <- bc != nil
		if r.URL.Path == "/small" {
			w.Write([]byte("ok"))
			return
		}
		bc.Hold()
		w.Write(body)
		http.NewResponseController(w).Flush()
		if err := bc.Release(); err != nil {
			t.Error(err)
		}
	}))
	srv.Listener = Listen(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.StartTLS()
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialTLSContext = DialTLS(&net.Dialer{}, &tr.TLSClientConfig)
	hc := &http.Client{Transport: tr}
	for _, path := range []string{"/big", "/small", "/big"} {
		res, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if path == "/big" && !bytes.Equal(got, body) || path == "/small" && string(got) != "ok" {
			t.Fatalf("%s: %d bytes differ", path, len(got))
		}
		if !<-found {
			t.Fatal("handler found no Conn")
		}
	}
	if FromContext(context.Background()) != nil {
		t.Error("Conn from an empty context")
	}

	// A server whose certificate the client does not trust: the dial fails.
	bad := httptest.NewTLSServer(http.NotFoundHandler())
	defer bad.Close()
	tr2 := &http.Transport{TLSClientConfig: &tls.Config{}}
	tr2.DialTLSContext = DialTLS(&net.Dialer{}, &tr2.TLSClientConfig)
	var uerr *tls.CertificateVerificationError
	if _, err := (&http.Client{Transport: tr2}).Get(bad.URL); !errors.As(err, &uerr) {
		t.Errorf("untrusted server: %v", err)
	}
}

// TestMaxBatches: no more than MaxBatches connections batch at once; the
// rest write straight through, and a released slot is taken again.
func TestMaxBatches(t *testing.T) {
	conns := make([]*Conn, MaxBatches+1)
	for i := range conns {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		go io.Copy(io.Discard, b)
		conns[i] = Wrap(a)
		conns[i].Hold()
	}
	batched := func(c *Conn) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.wbuf != nil
	}
	for i, c := range conns[:MaxBatches] {
		if !batched(c) {
			t.Fatalf("connection %d not batched", i)
		}
	}
	last := conns[MaxBatches]
	if batched(last) {
		t.Fatal("batched beyond MaxBatches")
	}
	if n, err := last.Write([]byte("through")); n != 7 || err != nil {
		t.Fatalf("unbatched write: %d %v", n, err)
	}
	last.Release()
	for _, c := range conns[:MaxBatches] {
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if len(batchSlots) != 0 {
		t.Fatalf("%d slots still taken", len(batchSlots))
	}
	last.Hold()
	if !batched(last) {
		t.Fatal("a freed slot was not taken again")
	}
	last.Release()
}
