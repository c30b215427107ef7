package httpapi

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// readCounter counts, per client address, the bytes the server has read
// from each connection: what a stalled upload has made the server take in
// (and, for a directory, hold in memory).
type readCounter struct {
	mu sync.Mutex
	n  map[string]*atomic.Int64
}

func countReads(t *testing.T) *readCounter {
	rc := &readCounter{n: map[string]*atomic.Int64{}}
	envListener = func(ln net.Listener) net.Listener { return countingListener{ln, rc} }
	t.Cleanup(func() { envListener = nil })
	return rc
}

func (rc *readCounter) of(addr string) int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if c := rc.n[addr]; c != nil {
		return c.Load()
	}
	return 0
}

type countingListener struct {
	net.Listener
	rc *readCounter
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	n := new(atomic.Int64)
	l.rc.mu.Lock()
	l.rc.n[c.RemoteAddr().String()] = n
	l.rc.mu.Unlock()
	return countingConn{c, n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// bigDirectory is a package whose root directory node's JSON is at least
// size bytes.
func bigDirectory(t *testing.T, size int) []types.Node {
	fsys := fstest.MapFS{}
	// An entry with the four digests is about 400 bytes of JSON.
	for i := range size/300 + 1 {
		fsys[fmt.Sprintf("p/f%06d", i)] = &fstest.MapFile{Data: []byte{byte(i)}}
	}
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes[0].Content) < size || nodes[0].Entry.Type != types.DirectoryType {
		t.Fatalf("root is a %q of %d bytes, want a directory of %d or more", nodes[0].Entry.Type, len(nodes[0].Content), size)
	}
	return nodes
}

// stalledUpload is a PUT of a node on a raw connection that sends all but
// the last byte of the body, then waits to be told to send it.
type stalledUpload struct {
	conn   *tls.Conn
	last   chan struct{} // closed: send the last byte
	result chan uploadResult
}

type uploadResult struct {
	res  *http.Response
	body string
	err  error
}

func (e *env) stallUpload(repoPath, tag string, n types.Node) *stalledUpload {
	e.t.Helper()
	u := &stalledUpload{conn: e.dialTLS(&net.Dialer{}), last: make(chan struct{}), result: make(chan uploadResult, 1)}
	go func() {
		_, err := fmt.Fprintf(u.conn, "PUT /api/v0.1.0%s/_tag/%s/tree/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Digest: %s\r\nContent-Length: %d\r\n\r\n",
			repoPath, tag, n.Path.String(), e.token, n.Entry.Type, n.Entry.Digest, len(n.Content))
		if err == nil {
			_, err = u.conn.Write(n.Content[:len(n.Content)-1])
		}
		if err != nil {
			return // refused and closed: the reader reports it
		}
		<-u.last
		u.conn.Write(n.Content[len(n.Content)-1:])
	}()
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(u.conn), nil)
		r := uploadResult{res: res, err: err}
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			r.body = string(b)
		}
		u.result <- r
	}()
	return u
}

// TestDirectoryUploadsShareABudget: directory uploads hold their bodies in
// memory (to parse them), and a client can send them as slowly as the stall
// rule allows. Six uploads at once, each stalled just before its last
// byte, used to make the server hold six bodies, whatever their sum (with
// the default connection limits, one user could make it hold thousands of
// 16 MiB bodies). With a budget of two bodies, two are read and held, and
// the others are refused at once with 503 and Retry-After, before their
// bodies are read. The held ones then complete, and the refused ones
// succeed when sent again.
func TestDirectoryUploadsShareABudget(t *testing.T) {
	rc := countReads(t)
	e := newEnv(t)
	nodes := bigDirectory(t, 1<<20)
	root := nodes[0]
	size := int64(len(root.Content))
	budget := 2 * size
	e.reg.MaxDirectoryBuffers = budget
	e.reg.DirectoryBufferWait = -1 // refuse at once: no wait to time
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	entry, _ := root.Entry.MarshalJSON()
	const k = 6
	for i := range k {
		e.expect(e.putEntity(e.anon, fmt.Sprintf("/alice/pub/_tag/1.0.%d", i), e.token, types.EntryType, entry), 201, "tag")
	}

	ups := make([]*stalledUpload, k)
	for i := range k {
		ups[i] = e.stallUpload("/alice/pub", fmt.Sprintf("1.0.%d", i), root)
	}
	// Each upload ends up either answered (or closed) by the server, or
	// holding: the server has read all it was sent. (The deadline only
	// detects a hang.)
	results := make([]*uploadResult, k)
	holding := func(i int) bool { return rc.of(ups[i].conn.LocalAddr().String()) >= size-1 }
	guard := time.Now().Add(time.Minute)
	for {
		settled := 0
		for i, u := range ups {
			if results[i] == nil {
				select {
				case r := <-u.result:
					results[i] = &r
				default:
				}
			}
			if results[i] != nil || holding(i) {
				settled++
			}
		}
		if settled == k {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("only %d of %d uploads were answered or read", settled, k)
		}
		time.Sleep(time.Millisecond)
	}
	var held int64
	var refused []int
	for i := range k {
		if results[i] == nil {
			held += rc.of(ups[i].conn.LocalAddr().String())
			continue
		}
		refused = append(refused, i)
		if r := results[i]; r.err != nil {
			t.Logf("upload %d: closed without a response: %v", i, r.err)
		} else {
			if r.res.StatusCode != http.StatusServiceUnavailable || r.res.Header.Get("Retry-After") == "" {
				t.Errorf("upload %d: %s (Retry-After %q) %s, want 503 with Retry-After", i, r.res.Status, r.res.Header.Get("Retry-After"), r.body)
			}
		}
	}
	// TLS records and read-ahead: a few KiB per connection.
	if slack := int64(k * 64 << 10); held > budget+slack {
		t.Fatalf("the server took in %d bytes of %d stalled directory uploads (%d bytes each) and holds them; the budget is %d bytes",
			held, k-len(refused), size, budget)
	}
	if n := e.reg.DirectoryBuffersInUse(); n > budget || n != int64(k-len(refused))*size {
		t.Errorf("budget in use: %d bytes, want %d (budget %d)", n, int64(k-len(refused))*size, budget)
	}
	if len(refused) != k-2 {
		t.Errorf("%d uploads refused, want %d", len(refused), k-2)
	}
	for i, u := range ups {
		if results[i] == nil {
			close(u.last)
			r := <-u.result
			if r.err != nil || r.res.StatusCode != http.StatusCreated {
				t.Errorf("held upload %d, completed: %v %v", i, r.err, r.res)
			}
		}
	}
	for _, i := range refused {
		e.expect(e.putNode(e.anon, "/alice/pub", fmt.Sprintf("1.0.%d", i), e.token, root), 201, "upload sent again")
	}
	if n := e.reg.DirectoryBuffersInUse(); n != 0 {
		t.Errorf("%d bytes of the budget still held after every upload ended", n)
	}
}

// TestDirectoryUploadWaitsForRoom: with room for one body, a second
// directory upload waits (without reading its body) while the first holds
// the budget, and goes ahead once the first is stored.
func TestDirectoryUploadWaitsForRoom(t *testing.T) {
	rc := countReads(t)
	e := newEnv(t)
	nodes := bigDirectory(t, 256<<10)
	root := nodes[0]
	size := int64(len(root.Content))
	e.reg.MaxDirectoryBuffers = size
	e.reg.DirectoryBufferWait = time.Hour // the test ends the wait
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	entry, _ := root.Entry.MarshalJSON()
	for _, tag := range []string{"1.0.0", "1.0.1"} {
		e.expect(e.putEntity(e.anon, "/alice/pub/_tag/"+tag, e.token, types.EntryType, entry), 201, "tag")
	}
	first := e.stallUpload("/alice/pub", "1.0.0", root)
	guard := time.Now().Add(time.Minute)
	for rc.of(first.conn.LocalAddr().String()) < size-1 {
		if time.Now().After(guard) {
			t.Fatal("the first upload was not read")
		}
		time.Sleep(time.Millisecond)
	}
	second := e.stallUpload("/alice/pub", "1.0.1", root)
	for e.reg.DirectoryBufferWaiters() != 1 {
		if time.Now().After(guard) {
			t.Fatal("the second upload does not wait for room")
		}
		time.Sleep(time.Millisecond)
	}
	if n := rc.of(second.conn.LocalAddr().String()); n >= size/2 {
		t.Errorf("the server read %d bytes of a waiting upload", n)
	}
	close(first.last)
	if r := <-first.result; r.err != nil || r.res.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %v %v", r.err, r.res)
	}
	close(second.last)
	if r := <-second.result; r.err != nil || r.res.StatusCode != http.StatusCreated {
		t.Fatalf("second upload: %v %v %s", r.err, r.res, r.body)
	}
	if n := e.reg.DirectoryBuffersInUse(); n != 0 {
		t.Errorf("%d bytes of the budget still held after both uploads ended", n)
	}
}
