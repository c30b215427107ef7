// Package connlimit bounds how many connections an HTTP server holds open,
// in all and from one client address.
//
// Every open connection costs a server memory (a goroutine, buffers, TLS
// state: about 30 KiB idle), whether or not it carries a request, and a
// client can hold thousands of idle keep-alive connections for the price
// of one small request each per idle timeout: without a bound, one client
// runs a server out of memory (8,000 connections fill the Steward's 256
// MiB pod). A Listener admits at most Max connections, and at most PerIP
// from one address (an IPv4 address, an IPv6 /64).
//
// At a bound it first closes an idle connection (between requests, as
// http.Server reports through ConnState; the one idle longest, of that
// address for PerIP), as a busy web server drops keep-alive connections.
// With none idle, a connection over PerIP is closed at once (one address
// cannot shut others out), and one over Max waits, in the accept queue,
// until a connection ends or goes idle: only many addresses together can
// fill the server, which is what a front proxy is for. Connections that
// have not finished their first request header are the server's
// ReadHeaderTimeout's to end; one part-way into its next request header
// still counts as idle (http.Server reports it active once the header is
// in).
//
// Trust: it trusts http.Server's ConnState reports and the kernel's peer
// addresses, and reads nothing a client sends. Behind a proxy or load
// balancer that hides client addresses, every client shares the proxy's
// address: turn PerIP off there.
package connlimit

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// warnEvery bounds how often reaching a bound is logged.
const warnEvery = time.Minute

// Limits are a Listener's bounds.
type Limits struct {
	// Max bounds the connections open at once (below 1: 1).
	Max int
	// PerIP bounds the connections open at once from one address (an
	// IPv4 address, an IPv6 /64); 0 is no such bound.
	PerIP int
}

// Listener admits connections within its Limits (see the package doc).
// Set its ConnState method as the http.Server's ConnState.
type Listener struct {
	net.Listener
	lim Limits
	log *slog.Logger

	mu       sync.Mutex
	open     int
	byAddr   map[netip.Prefix]int
	idle     map[*conn]time.Time // idle connections, since when
	lastWarn map[string]time.Time
	wake     chan struct{} // a slot was released or a connection went idle (capacity 1: one waiter)
	closed   chan struct{}
	once     sync.Once
}

// New wraps ln. log receives a warning, at most once a minute for each
// bound, when a bound is reached.
func New(ln net.Listener, lim Limits, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim.Max = max(1, lim.Max)
	lim.PerIP = max(0, lim.PerIP)
	return &Listener{
		Listener: ln, lim: lim, log: log,
		byAddr:   make(map[netip.Prefix]int),
		idle:     make(map[*conn]time.Time),
		lastWarn: make(map[string]time.Time),
		wake:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
}

// addrKey is the address a connection counts against for PerIP.
func addrKey(a net.Addr) netip.Prefix {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{} // not TCP: all such share one key
	}
	ip := t.AddrPort().Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Accept returns the next connection within the limits (see the package
// doc). A slot is made only for a connection that has arrived: the server
// calls Accept ahead of its clients.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if admitted, ok := l.admit(c); ok {
			return admitted, nil
		}
		if l.isClosed() {
			return nil, net.ErrClosed
		}
	}
}

// admit waits for a slot for c; false when c was closed instead (over
// PerIP with none of its address idle, or the listener closed).
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	key := addrKey(c.RemoteAddr())
	for {
		l.mu.Lock()
		overAddr := l.lim.PerIP > 0 && l.byAddr[key] >= l.lim.PerIP
		if !overAddr && l.open < l.lim.Max {
			l.open++
			l.byAddr[key]++
			l.mu.Unlock()
			return &conn{Conn: c, l: l, key: key}, true
		}
		bound := "max"
		if overAddr {
			bound = "per-ip"
		}
		victim := l.longestIdle(key, overAddr)
		warn := time.Since(l.lastWarn[bound]) >= warnEvery
		if warn {
			l.lastWarn[bound] = time.Now()
		}
		l.mu.Unlock()
		if warn {
			if overAddr {
				l.log.Warn("connection limit per address reached: closing its idle connections, then its new ones", "per_ip", l.lim.PerIP, "addr", key.String())
			} else {
				l.log.Warn("connection limit reached: closing idle connections, then holding new ones back until a connection ends", "max", l.lim.Max)
			}
		}
		if victim != nil {
			victim.Close() // releases its slot
			continue
		}
		if overAddr {
			c.Close()
			return nil, false
		}
		select {
		case <-l.wake:
		case <-l.closed:
			c.Close()
			return nil, false
		}
	}
}

// longestIdle removes from the idle set and returns the connection idle
// longest (of address key only, if ofKey); nil if none. l.mu is held.
func (l *Listener) longestIdle(key netip.Prefix, ofKey bool) *conn {
	var victim *conn
	var since time.Time
	for v, t := range l.idle {
		if ofKey && v.key != key {
			continue
		}
		if victim == nil || t.Before(since) {
			victim, since = v, t
		}
	}
	if victim != nil {
		delete(l.idle, victim)
	}
	return victim
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Open reports how many admitted connections are open.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	l.open--
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
	l.mu.Unlock()
	l.signal()
}

// signal wakes an Accept waiting at the bound, to look again.
func (l *Listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ConnState records which connections are idle; install it as the
// http.Server's ConnState. c may be a connection of this Listener or one
// that wraps it (a *tls.Conn, anything with a NetConn method).
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	own := unwrap(c)
	if own == nil || own.l != l {
		return
	}
	l.mu.Lock()
	idle := s == http.StateIdle && !own.done
	if idle {
		l.idle[own] = time.Now()
	} else {
		delete(l.idle, own)
	}
	l.mu.Unlock()
	if idle {
		l.signal()
	}
}

// unwrap finds the connection of this package beneath c.
func unwrap(c net.Conn) *conn {
	for range 8 {
		switch v := c.(type) {
		case *conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// conn releases its Listener's slot when it is first closed.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
	done bool // guarded by l.mu
}

// NetConn returns the connection c wraps.
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.done = true
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		c.l.release(c.key)
	})
	return err
}
