package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// liveHeap is the bytes of live heap objects, after two collections (the
// second empties sync.Pools' victim caches, so that pooled buffers nobody
// holds do not count).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// stallFileUploads publishes k tags whose tree is one file of size bytes
// (root directory stored), then starts an upload of the file to each, each
// stalled before its last byte, and returns once the server has read all
// but that byte of each (the deadline only detects a hang). It also
// returns the heap's growth from just before the uploads started.
func stallFileUploads(t *testing.T, e *env, rc *readCounter, k, size int) (types.Node, []*stalledUpload, int64) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	fsys := fstest.MapFS{"p/f.bin": {Data: data}}
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, file := nodes[0], nodes[1]
	file.Content = data
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	entry, _ := root.Entry.MarshalJSON()
	for i := range k {
		tag := fmt.Sprintf("1.0.%d", i)
		e.expect(e.putEntity(e.anon, "/alice/pub/_tag/"+tag, e.token, types.EntryType, entry), 201, "tag")
		e.expect(e.putNode(e.anon, "/alice/pub", tag, e.token, root), 201, "root")
	}
	before := liveHeap()
	ups := make([]*stalledUpload, k)
	for i := range k {
		ups[i] = e.stallUpload("/alice/pub", fmt.Sprintf("1.0.%d", i), file)
	}
	guard := time.Now().Add(time.Minute)
	for i, u := range ups {
		for rc.of(u.conn.LocalAddr().String()) < int64(size-1) {
			select {
			case r := <-u.result:
				t.Fatalf("upload %d ended early: %v %v %s", i, r.err, r.res, r.body)
			default:
			}
			if time.Now().After(guard) {
				t.Fatalf("upload %d: the server read %d of %d bytes", i, rc.of(u.conn.LocalAddr().String()), size)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return file, ups, liveHeap() - before
}

// finishUploads sends the last byte of each upload; each must be stored
// and read back whole.
func finishUploads(t *testing.T, e *env, file types.Node, ups []*stalledUpload) {
	for i, u := range ups {
		close(u.last)
		if r := <-u.result; r.err != nil || r.res.StatusCode != http.StatusCreated {
			t.Fatalf("upload %d, completed: %v %v %s", i, r.err, r.res, r.body)
		}
		got := e.req(e.anon, http.MethodGet, fmt.Sprintf("/alice/pub/_tag/1.0.%d/tree/%s", i, file.Path), "", nil, nil)
		if got.code != http.StatusOK || !bytes.Equal(got.body, file.Content) {
			t.Fatalf("upload %d: GET gives %d, %d bytes (equal: %v)", i, got.code, len(got.body), bytes.Equal(got.body, file.Content))
		}
	}
}

// perConnSlack is what a stalled upload's connection costs the server (and
// the test's client) besides copy buffers: TLS and HTTP state, the
// request, a read-ahead buffer. Measured at about 45 KiB.
const perConnSlack = 256 << 10

// TestStalledSmallFileUploadsHoldLittle: a file upload used to take three
// 1 MiB copy buffers whatever its size, and hold them while its client
// trickled the body (the stall rule lets 16 KiB take 2 minutes): 16 stalled
// uploads of a 4 KiB file made the server hold 48 MiB (with the default
// connection limits, one address could make it hold 384 MiB, all of them
// 6 GiB); on a bucket (S3), the bucket's copy took 1 MiB. Now each holds a
// buffer of its body's size.
func TestStalledSmallFileUploadsHoldLittle(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) *env{
		"fs":   func(t *testing.T) *env { return newEnv(t) },
		"blob": func(t *testing.T) *env { return newEnvOn(t, store.NewBlob(memblob.OpenBucket(nil))) },
	} {
		t.Run(name, func(t *testing.T) {
			rc := countReads(t)
			e := open(t)
			const k, size = 16, 4 << 10
			file, ups, grown := stallFileUploads(t, e, rc, k, size)
			t.Logf("%d stalled uploads of %d bytes: heap grew by %d KiB (%d KiB each)", k, size, grown>>10, grown/k>>10)
			if grown > k*perConnSlack {
				t.Errorf("%d uploads of a %d-byte file, each stalled before its last byte, hold %d KiB (%d KiB each); want at most %d KiB each",
					k, size, grown>>10, grown/k>>10, perConnSlack>>10)
			}
			if n := e.reg.UploadBuffersInUse(); n != 0 {
				t.Errorf("small uploads hold %d bytes of the upload buffer budget", n)
			}
			finishUploads(t, e, file, ups)
		})
	}
}

// TestStalledLargeFileUploadsShareABudget: an upload of a MiB or more is
// hashed and written pipelined, with 4.5 MiB of buffers, and used to hold
// them however slowly its body arrived (6 stalled uploads of 2 MiB: 27 MiB;
// connections × 4.5 MiB in all). With room in the upload buffer budget for
// one, one upload is pipelined and the others are copied with a small
// buffer; every one is verified and stored.
func TestStalledLargeFileUploadsShareABudget(t *testing.T) {
	rc := countReads(t)
	e := newEnv(t)
	const k, size = 6, 2 << 20
	const pipelined = 4<<20 + 512<<10 // copy buffers and hashing chunks
	e.reg.MaxUploadBuffers = pipelined
	file, ups, grown := stallFileUploads(t, e, rc, k, size)
	t.Logf("%d stalled uploads of %d bytes: heap grew by %d KiB; budget in use %d KiB, %d fallbacks",
		k, size, grown>>10, e.reg.UploadBuffersInUse()>>10, e.reg.UploadBufferFallbacks())
	if limit := int64(pipelined + k*(perConnSlack+64<<10)); grown > limit {
		t.Errorf("%d uploads of a %d-byte file, each stalled before its last byte, hold %d KiB; want at most %d KiB (the budget, %d KiB, and %d KiB each)",
			k, size, grown>>10, limit>>10, pipelined>>10, (perConnSlack+64<<10)>>10)
	}
	if n := e.reg.UploadBuffersInUse(); n != pipelined {
		t.Errorf("upload buffer budget in use: %d bytes, want %d (one pipelined upload)", n, pipelined)
	}
	if n := e.reg.UploadBufferFallbacks(); n != k-1 {
		t.Errorf("%d uploads found no room in the budget, want %d", n, k-1)
	}
	mr, err := e.anon.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, m := range []string{fmt.Sprintf("drawbridge_upload_buffer_bytes %g\n", float64(pipelined)), fmt.Sprintf("drawbridge_upload_buffer_fallbacks_total %d\n", k-1)} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	finishUploads(t, e, file, ups)
	if n := e.reg.UploadBuffersInUse(); n != 0 {
		t.Errorf("%d bytes of the upload buffer budget still held after every upload ended", n)
	}
}
