package fd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"syscall"
	"testing"
)

// readAll reads s to its end (blocking reads) and returns the plaintext
// and the error that ended it.
func readAll(t *testing.T, s *TLSSocket) (string, error) {
	t.Helper()
	var got []byte
	var err error
	within(t, "reading the TLS stream to its end", func() {
		buf := make([]byte, 64)
		for {
			var n int
			n, err = s.Read(buf, false)
			got = append(got, buf[:n]...)
			if err != nil {
				return
			}
		}
	})
	return string(got), err
}

// TestTLSTruncationIsNotEOF: the host carries every byte of a Keep's TLS
// streams and sees where records end. If it ends the transport after a
// record, without the peer's close_notify, the stream was cut short: the
// guest must get an error (ECONNRESET), not the end of the stream, or it
// takes a truncated upload or reply for a whole one. (crypto/tls reports
// such an end as io.EOF; rustls, upstream's, as UnexpectedEof.) With
// close_notify, and after the guest shut reading itself, the end is a
// clean EOF as before.
func TestTLSTruncationIsNotEOF(t *testing.T) {
	cert := selfSigned(t)
	serverCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	type pair struct {
		keep *TLSSocket
		peer *tls.Conn
		cut  func() // the host ends the transport (no close_notify)
	}
	transports := map[string]func(t *testing.T) pair{
		"tcp": func(t *testing.T) pair {
			_, client, server := tcpPair(t)
			cc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
			go cc.Handshake()
			s, err := NewTLSServer(context.Background(), server, serverCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return pair{s, cc, func() { client.CloseWrite() }}
		},
		"channel": func(t *testing.T) pair {
			a, b := memPipe()
			cc := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
			go cc.Handshake()
			s, err := NewConnTLSServer(context.Background(), a, serverCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return pair{s, cc, func() {
				a.mu.Lock()
				a.closed = true
				a.cond.Broadcast()
				a.mu.Unlock()
			}}
		},
	}
	for name, open := range transports {
		t.Run(name+"/cut", func(t *testing.T) {
			p := open(t)
			if _, err := p.peer.Write([]byte("first half;")); err != nil {
				t.Fatal(err)
			}
			p.cut()
			got, err := readAll(t, p.keep)
			if got != "first half;" {
				t.Errorf("read %q before the end; want %q", got, "first half;")
			}
			if err == nil || errors.Is(err, io.EOF) || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("a stream cut after a record without close_notify ends with %v; want ECONNRESET, not EOF", err)
			}
			// And it stays so.
			if _, err2 := p.keep.Read(make([]byte, 8), true); !errors.Is(err2, syscall.ECONNRESET) {
				t.Fatalf("read after the cut: %v; want ECONNRESET", err2)
			}
		})
		t.Run(name+"/close_notify", func(t *testing.T) {
			p := open(t)
			if _, err := p.peer.Write([]byte("whole;")); err != nil {
				t.Fatal(err)
			}
			if err := p.peer.CloseWrite(); err != nil { // close_notify
				t.Fatal(err)
			}
			p.cut()
			got, err := readAll(t, p.keep)
			if got != "whole;" || err != io.EOF {
				t.Fatalf("after close_notify: %q, %v; want %q, EOF", got, err, "whole;")
			}
		})
	}
	t.Run("tcp/shut_read", func(t *testing.T) {
		p := transports["tcp"](t)
		if err := p.keep.Shutdown(ShutRead); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, p.keep); err != io.EOF {
			t.Fatalf("read after the guest's own shutdown(SHUT_RD): %v; want EOF", err)
		}
	})
}
