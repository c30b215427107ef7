// Package bulkconn moves large bodies over TLS with fewer system calls.
//
// crypto/tls writes every record (at most 16 KiB) with its own write(2), and
// reads the socket one record at a time. On a fast link, a loopback link
// above all, those system calls cost about as much CPU as the encryption: a
// 64 MiB download is 4,096 writes and 4,096 reads. A Conn sits between
// crypto/tls and the TCP connection and
//
//   - on request (Hold … Release), collects the records of a large body and
//     writes them in batches of BatchSize, so the kernel sees few large
//     writes; the Drawbridge server holds a connection while it sends a
//     large node, and the client while it uploads one (HTTP/1.x only:
//     under HTTP/2 flow control a held batch could keep back the bytes
//     the peer waits for);
//   - optionally (WithReadBuffer) reads the socket in large chunks and hands
//     crypto/tls the records from memory; the Drawbridge client does this.
//
// A Conn changes nothing in what is sent or received, only how it is
// chunked; it sees ciphertext only and trusts nothing in it.
package bulkconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// BatchSize is how many bytes a held connection collects before writing.
const BatchSize = 256 << 10

// MaxBatches bounds the batches held at once in the process (MaxBatches ×
// BatchSize bytes of memory, whatever the number of connections): a Hold
// beyond it leaves that connection's writes unbatched, which is only
// slower. Peers that request large bodies and then stop reading cannot
// make a server hold more.
const MaxBatches = 256

var (
	// batchBufs are write batches, shared by all connections.
	batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, BatchSize); return &b }}
	// batchSlots counts the batches held.
	batchSlots = make(chan struct{}, MaxBatches)
)

// Conn is a net.Conn whose writes can be batched and whose reads can be
// buffered. It is safe for concurrent use as a net.Conn is.
type Conn struct {
	net.Conn
	r *bufio.Reader // nil: reads go straight to the socket

	mu   sync.Mutex
	held int     // Hold calls not yet released
	wbuf *[]byte // the batch while held
}

// Option configures a Conn.
type Option func(*Conn)

// WithReadBuffer makes the Conn read the socket size bytes at a time.
func WithReadBuffer(size int) Option {
	return func(c *Conn) { c.r = bufio.NewReaderSize(c.Conn, size) }
}

// Wrap returns c as a Conn.
func Wrap(c net.Conn, opts ...Option) *Conn {
	bc := &Conn{Conn: c}
	for _, o := range opts {
		o(bc)
	}
	return bc
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	if c.r == nil {
		return c.Conn.Read(p)
	}
	return c.r.Read(p)
}

// Write implements net.Conn. While the connection is held, p is added to
// the batch, which is written once it is full; an error writing it is
// returned by this Write or by Release.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wbuf == nil {
		return c.Conn.Write(p)
	}
	if len(*c.wbuf)+len(p) > cap(*c.wbuf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= cap(*c.wbuf) {
			return c.Conn.Write(p)
		}
	}
	*c.wbuf = append(*c.wbuf, p...)
	return len(p), nil
}

func (c *Conn) flushLocked() error {
	b := *c.wbuf
	*c.wbuf = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := c.Conn.Write(b)
	return err
}

// Hold starts batching writes until the matching Release (unless
// MaxBatches batches are held already: then writes stay unbatched until
// that Release). Calls nest; the outermost decides.
func (c *Conn) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held++
	if c.held > 1 {
		return
	}
	select {
	case batchSlots <- struct{}{}:
		c.wbuf = batchBufs.Get().(*[]byte)
	default:
	}
}

// Release writes what the batch holds and, when every Hold is released,
// returns to writing straight through. Whoever holds a connection must
// release it (after flushing anything buffered above it, such as an
// http.ResponseWriter), or the tail of what was written is never sent.
// A Release without a Hold does nothing.
func (c *Conn) Release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 {
		return nil
	}
	var err error
	if c.wbuf != nil {
		err = c.flushLocked()
	}
	if c.held--; c.held == 0 && c.wbuf != nil {
		batchBufs.Put(c.wbuf)
		c.wbuf = nil
		<-batchSlots
	}
	return err
}

// listener wraps accepted connections.
type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// NetConn returns the connection c wraps.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Listen returns ln with every accepted connection wrapped as a Conn. Put
// TLS on top of it (http.Server.ServeTLS, tls.NewListener) and set
// http.Server.ConnContext to ConnContext so handlers can find the Conn.
func Listen(ln net.Listener) net.Listener { return listener{ln} }

type ctxKey struct{}

// ConnContext is an http.Server.ConnContext that records the Conn under a
// TLS connection (or a plain one) for FromContext.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if bc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, ctxKey{}, bc)
	}
	return ctx
}

// FromContext returns the Conn a request arrived on, or nil.
func FromContext(ctx context.Context) *Conn {
	bc, _ := ctx.Value(ctxKey{}).(*Conn)
	return bc
}

// ReadBufferSize is the read buffer DialTLS gives its connections.
const ReadBufferSize = 1 << 20

// handshakeTimeout bounds DialTLS's handshake, as http.DefaultTransport's
// TLSHandshakeTimeout does.
const handshakeTimeout = 10 * time.Second

// DialTLS returns an http.Transport.DialTLSContext that dials TCP with d,
// reads the connection ReadBufferSize bytes at a time, and completes a TLS
// handshake with a clone of *conf as it is at dial time (ServerName taken
// from the address when conf has none). Proxied requests do not use it.
func DialTLS(d *net.Dialer, conf **tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		var tc *tls.Config
		if *conf != nil {
			tc = (*conf).Clone()
		} else {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			tc.ServerName = host
		}
		tlsConn := tls.Client(Wrap(c, WithReadBuffer(ReadBufferSize)), tc)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
		if err := tlsConn.HandshakeContext(hctx); err != nil {
			c.Close()
			return nil, err
		}
		return tlsConn, nil
	}
}
