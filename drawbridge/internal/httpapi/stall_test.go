package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// shortStall makes the envs made next cut a transfer that moves fewer than
// 16 KiB in window.
func shortStall(t *testing.T, window time.Duration) {
	oldT, oldN := StallTimeout, StallMinBytes
	StallTimeout, StallMinBytes = window, 16<<10
	t.Cleanup(func() { StallTimeout, StallMinBytes = oldT, oldN })
}

// singleFile is a package that is one file of n bytes.
func singleFile(t *testing.T, n int) []types.Node {
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, n-8)...)
	nodes, err := types.BuildTree(mapFS(wasm), "p/main.wasm", nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].Content = wasm
	return nodes
}

// dialTLS opens a raw HTTP/1.1 connection to the env's server.
func (e *env) dialTLS(d *net.Dialer) *tls.Conn {
	e.t.Helper()
	c, err := tls.DialWithDialer(d, "tcp", strings.TrimPrefix(e.base, "https://"),
		&tls.Config{RootCAs: e.pki.pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// logged reports whether the server logged s.
func (e *env) logged(s string) bool {
	logMu <- struct{}{}
	defer func() { <-logMu }()
	return strings.Contains(e.logBuf.String(), s)
}

// TestTricklingUploadIsCut: a client that keeps sending a byte every 20 ms
// (far less than 16 KiB in the 200 ms window) loses its upload, although
// it never stops: each byte used to restart the timeout, so a client could
// hold a connection, a goroutine and the upload's buffers for as long as
// it trickled. Nothing is stored, and a normal upload then works.
func TestTricklingUploadIsCut(t *testing.T) {
	shortStall(t, 200*time.Millisecond)
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	nodes := singleFile(t, 64<<10)
	entry, _ := nodes[0].Entry.MarshalJSON()
	e.expect(e.putEntity(e.anon, "/alice/pub/_tag/1.0.0", e.token, types.EntryType, entry), 201, "tag")
	root := nodes[0]

	c := e.dialTLS(&net.Dialer{})
	fmt.Fprintf(c, "PUT /api/v0.1.0/alice/pub/_tag/1.0.0/tree/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Digest: %s\r\nContent-Length: %d\r\n\r\n",
		e.token, root.Entry.Type, root.Entry.Digest, root.Entry.Length)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := c.Write(root.Content[i : i+1]); err != nil {
				return // cut
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	// The server must answer or close on its own; the deadline only
	// detects a hang (the trickle would take 22 minutes).
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept a trickling upload going")
	}
	if err == nil {
		if res.StatusCode < 400 {
			t.Fatalf("trickled upload answered %s", res.Status)
		}
		res.Body.Close()
	}
	if _, err := e.reg.StatNode(t.Context(), storeRef("alice", "pub", "1.0.0"), types.TreePath{}); err == nil {
		t.Fatal("a cut upload stored something")
	}
	e.expect(e.putNode(e.anon, "/alice/pub", "1.0.0", e.token, root), 201, "upload after the cut one")
}

// smallBuffers makes the server's sockets buffer little output, so that a client
// that does not read holds back the server's writes at once.
func smallBuffers(t *testing.T) {
	envListener = func(ln net.Listener) net.Listener { return smallBufListener{ln} }
	t.Cleanup(func() { envListener = nil })
}

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// TestTricklingDownloadIsCut: an anonymous client reading a large public
// node a byte every 20 ms loses the connection (the server's handler ends
// with an error) instead of holding the node open, a goroutine and a copy
// buffer for as long as it trickles; it receives less than the node.
func TestTricklingDownloadIsCut(t *testing.T) {
	shortStall(t, 200*time.Millisecond)
	smallBuffers(t)
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	nodes := singleFile(t, 4<<20)
	e.publish(e.anon, "/alice/pub", "1.0.0", e.token, nodes)

	c := e.dialTLS(&net.Dialer{})
	if tc, ok := c.NetConn().(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // and no growing to hold the node
	}
	fmt.Fprintf(c, "GET /api/v0.1.0/alice/pub/_tag/1.0.0/tree/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReaderSize(c, 16)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET: %v %v", res, err)
	}
	// Trickle until the server gives up (the deadline only detects a
	// hang: the whole node would take 23 hours).
	guard := time.Now().Add(30 * time.Second)
	var got int64
	for !e.logged("request failed after the response started") {
		if time.Now().After(guard) {
			t.Fatal("the server kept sending to a trickling client")
		}
		time.Sleep(20 * time.Millisecond)
		n, err := res.Body.Read(make([]byte, 1))
		got += int64(n)
		if err != nil {
			break
		}
	}
	// What was sent before the cut arrives; the rest never does.
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, res.Body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the connection neither ends nor closes after the cut")
	}
	if got += n; got >= int64(len(nodes[0].Content)) {
		t.Fatalf("received all %d bytes", got)
	}
}

// TestHandlerWorkIsNotAStall: bodies smaller than StallMinBytes complete
// when they move within the window, on kept-alive connections, however
// long the handler works before answering: a directory upload whose parse
// waits (here: is held) well past the window still succeeds. The request
// body used to leave a read deadline behind it, which cancelled the
// request while the handler worked.
func TestHandlerWorkIsNotAStall(t *testing.T) {
	shortStall(t, 200*time.Millisecond)
	hold := make(chan struct{})
	var held atomic.Int32
	store.ParseHook = func(holding bool) {
		if !holding && held.Add(1) == 1 {
			<-hold
		}
	}
	t.Cleanup(func() { store.ParseHook = nil })
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	nodes := testPackage(t, "")
	entry, _ := nodes[0].Entry.MarshalJSON()
	e.expect(e.putEntity(e.anon, "/alice/pub/_tag/1.0.0", e.token, types.EntryType, entry), 201, "tag")
	go func() {
		for held.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(4 * StallTimeout) // the handler works, the client waits
		close(hold)
	}()
	e.expect(e.putNode(e.anon, "/alice/pub", "1.0.0", e.token, nodes[0]), 201, "root directory, parsed late")
	for _, n := range nodes[1:] {
		e.expect(e.putNode(e.anon, "/alice/pub", "1.0.0", e.token, n), 201, "PUT node /"+n.Path.String())
	}
	e.expect(e.req(e.anon, "GET", "/alice/pub/_tag/1.0.0/tree/test-file.txt", "", nil, nil), 200, "small GET")
}

// TestDirectoryParsesBounded: many directory uploads at once (one per tag,
// as a repository owner could send) parse at most MaxParallelParses at a
// time; the others wait for a slot, holding only their body, and all
// succeed.
func TestDirectoryParsesBounded(t *testing.T) {
	bound := store.MaxParallelParses()
	k := bound + 6
	var asked, running, most atomic.Int32
	release := make(chan struct{})
	store.ParseHook = func(holding bool) {
		if !holding {
			asked.Add(1)
			return
		}
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
	}
	t.Cleanup(func() { store.ParseHook = nil })
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	nodes := testPackage(t, "")
	entry, _ := nodes[0].Entry.MarshalJSON()
	for i := range k {
		e.expect(e.putEntity(e.anon, fmt.Sprintf("/alice/pub/_tag/1.0.%d", i), e.token, types.EntryType, entry), 201, "tag")
	}
	codes := make([]int, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = e.putNode(e.anon, "/alice/pub", fmt.Sprintf("1.0.%d", i), e.token, nodes[0]).code
		}()
	}
	// Every upload has asked for a slot, and the slots are taken. (The
	// deadline only detects a hang; the pause lets an unbounded parse
	// show.)
	guard := time.Now().Add(time.Minute)
	for asked.Load() < int32(k) || running.Load() < int32(bound) {
		if time.Now().After(guard) {
			close(release)
			t.Fatalf("%d of %d uploads asked to parse, %d parse", asked.Load(), k, running.Load())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := most.Load(); n > int32(bound) {
		close(release)
		wg.Wait()
		t.Fatalf("%d directory parses ran at once; the bound is %d", n, bound)
	}
	close(release)
	wg.Wait()
	if n := most.Load(); n > int32(bound) {
		t.Fatalf("%d directory parses ran at once; the bound is %d", n, bound)
	}
	for i, c := range codes {
		if c != 201 {
			t.Errorf("upload %d: %d", i, c)
		}
	}
}
