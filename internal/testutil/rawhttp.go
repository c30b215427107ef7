package testutil

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// KeepAliveGET sends GET path (Host host) on the HTTP/1.1 connection c,
// whose reads go through r, and reads the whole response, leaving c open:
// for tests of what a server does with a client's idle keep-alive
// connections, which net/http's client manages out of sight.
func KeepAliveGET(c net.Conn, r *bufio.Reader, host, path string) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, err
}

// CheckIdleMakesRoom checks a server that holds one connection at most
// (dial makes a client connection to it): a second client is served while
// the first idles on its keep-alive connection, which the server closes
// to make room. bound names the setting in failures.
func CheckIdleMakesRoom(t testing.TB, dial func() net.Conn, host, path, bound string) {
	t.Helper()
	open := func() (net.Conn, *bufio.Reader) {
		c := dial()
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(time.Minute)) // hang guard
		return c, bufio.NewReader(c)
	}
	a, ar := open()
	if _, err := KeepAliveGET(a, ar, host, path); err != nil {
		t.Fatal(err)
	}
	b, br := open()
	if _, err := KeepAliveGET(b, br, host, path); err != nil {
		t.Fatalf("a second client while the first idles: %v", err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second)) // hang guard: the close comes at once
	if _, err := ar.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the idle connection was kept past %s (read: %v)", bound, err)
	}
}
