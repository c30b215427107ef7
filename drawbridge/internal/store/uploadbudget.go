package store

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// A large node upload goes fastest pipelined: hashing (types.
// PipelinedVerifyingReader) and writing (copyPipelined, or the S3 driver's
// concurrent parts) run beside receiving, each stage with buffers of its
// own, MiBs per upload. A client can send its body as slowly as the stall
// rule allows, and each upload holds its buffers as long as it lasts, so
// without a bound one user opening many uploads at once makes the server
// hold connections × MiBs (with the default connection limits, GiBs) for
// bodies it barely receives. Pipelining is only a speed optimisation, so
// its buffers come from the Registry's upload buffer budget: an upload of
// a MiB or more that finds room there takes its buffers' size from it and
// gives it back when it ends; one that finds none, or a smaller one, is
// verified and copied plainly, hashing as it reads, with one buffer of at
// most plainCopyBuf bytes (smaller bodies: their length). Nothing waits
// for the budget, and the digests are checked the same way on either path.

// DefaultMaxUploadBuffers is the default of Registry.MaxUploadBuffers:
// about 56 pipelined uploads at once to a directory store, 5 large ones to
// S3.
const DefaultMaxUploadBuffers = 256 << 20

// plainCopyBuf is the most a node upload that is not pipelined holds to
// copy its body (a body of less holds its length).
const plainCopyBuf = 64 << 10

// plainBufs are plainCopyBuf-sized copy buffers.
var plainBufs = sync.Pool{New: func() any { b := make([]byte, plainCopyBuf); return &b }}

// plainBuffer returns a copy buffer for a body of length bytes: its length
// (at least one byte), at most plainCopyBuf; and its release.
func plainBuffer(length int64) ([]byte, func()) {
	if length >= plainCopyBuf {
		bp := plainBufs.Get().(*[]byte)
		return *bp, func() { plainBufs.Put(bp) }
	}
	return make([]byte, max(length, 1)), func() {}
}

// copyPlain copies r to w through buf, like copyPipelined in one goroutine:
// only io.EOF from r ends the copy; any other error from r or w is
// returned, and w may then hold a prefix of r.
func copyPlain(w io.Writer, r io.Reader, buf []byte) error {
	for {
		n, err := fill(r, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch err {
		case nil:
		case io.EOF:
			return nil
		default:
			return err
		}
	}
}

// pipelineCoster is implemented by Backends whose writes take buffers of
// their own when the context allows pipelining (withPipelining).
type pipelineCoster interface {
	// pipelineBuffers is how many bytes of buffers a pipelined write of
	// a body of length bytes holds (at most).
	pipelineBuffers(length int64) int64
}

type pipelineKey struct{}

// withPipelining tells a Backend that the upload's body may be written
// with large buffers (counted in the upload buffer budget).
func withPipelining(ctx context.Context) context.Context {
	return context.WithValue(ctx, pipelineKey{}, true)
}

// pipelining reports whether ctx allows pipelined writes.
func pipelining(ctx context.Context) bool {
	ok, _ := ctx.Value(pipelineKey{}).(bool)
	return ok
}

// uploadBudget is the upload buffer budget of a Registry: a byte
// semaphore that is never waited for, with its use counted.
type uploadBudget struct {
	byteBudget // size 0: no pipelining
	once       sync.Once
	fallbacks  atomic.Int64
}

// uploadBuffers returns r's budget, sized from r's settings at first use.
func (r *Registry) uploadBuffers() *uploadBudget {
	b := &r.uploadBudget
	b.once.Do(func() {
		switch size := r.MaxUploadBuffers; {
		case size == 0:
			b.setSize(DefaultMaxUploadBuffers)
		case size < 0:
			b.setSize(0)
		default:
			b.setSize(size)
		}
	})
	return b
}

// UploadBuffersInUse is the number of bytes of the upload buffer budget
// held now (by pipelined uploads).
func (r *Registry) UploadBuffersInUse() int64 { return r.uploadBudget.inUse.Load() }

// UploadBufferFallbacks is the number of uploads of a MiB or more that
// found no room in that budget and were copied plainly, so far.
func (r *Registry) UploadBufferFallbacks() int64 { return r.uploadBudget.fallbacks.Load() }

// pipelineCost is how many bytes of buffers a pipelined upload of node
// body of length bytes holds: 0 if it is not worth pipelining.
func (r *Registry) pipelineCost(length int64, dir bool) int64 {
	n := types.PipelinedReaderBuffers(length)
	if n == 0 {
		return 0
	}
	// A directory is stored from memory: the Backend copies no body.
	if c, ok := r.b.(pipelineCoster); ok && !dir {
		n += c.pipelineBuffers(length)
	}
	return n
}

// tryAcquire takes n bytes of the budget if they are free now, and returns
// their release (call it once); else ok is false.
func (b *uploadBudget) tryAcquire(n int64) (release func(), ok bool) {
	if n > b.size || !b.sem.TryAcquire(n) {
		b.fallbacks.Add(1)
		return nil, false
	}
	return b.held(n), true
}
