package types

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Large bodies are verified on a second core: the goroutine that receives
// them (and, over TLS, decrypts them) hands each chunk to a hashing
// goroutine and goes on receiving. The chunk is small enough to still be in
// the shared cache when it is hashed.
const (
	// pipelineChunk is how many bytes are handed over at a time.
	pipelineChunk = 256 << 10
	// pipelineMin is the size from which hashing moves to its own
	// goroutine; smaller bodies are hashed as they are read.
	pipelineMin = 1 << 20
	// pipelineDepth is how many chunks may wait for a stage.
	pipelineDepth = 16
	// copyDepth is how many chunk copies a PipelinedVerifyingReader may
	// have waiting (each is pipelineChunk bytes of memory per upload in
	// flight).
	copyDepth = 4
)

// stage consumes chunks in its own goroutine. Chunks must not change while
// the stage may read them: a region of a destination slice that the reader
// no longer writes, or a buffer that is only reused after the stage
// returned it (done).
type stage struct {
	ch     chan []byte
	fn     func([]byte) error
	done   func([]byte) // called with each chunk once fn has used it (may be nil)
	exited chan struct{}
	failed chan struct{} // closed when fn first fails
	err    error         // fn's first error; read after exited is closed
	stop   atomic.Bool   // set when the result is no longer wanted
}

func startStage(fn func([]byte) error, done func([]byte)) *stage {
	s := &stage{ch: make(chan []byte, pipelineDepth), fn: fn, done: done,
		exited: make(chan struct{}), failed: make(chan struct{})}
	go s.run()
	return s
}

func (s *stage) run() {
	defer close(s.exited)
	for c := range s.ch {
		if s.err == nil && !s.stop.Load() {
			if s.err = s.fn(c); s.err != nil {
				close(s.failed)
			}
		}
		if s.done != nil {
			s.done(c)
		}
	}
}

// send hands c over; it blocks while pipelineDepth chunks are waiting.
func (s *stage) send(c []byte) { s.ch <- c }

// close waits for the stage to finish every chunk sent and returns its
// error. With abandon set, chunks not yet started are skipped.
func (s *stage) close(abandon bool) error {
	if abandon {
		s.stop.Store(true)
	}
	close(s.ch)
	<-s.exited
	return s.err
}

// ReadVerified fills dst from r, then checks that r ends there (exactly
// len(dst) bytes) and that the bytes match every digest in want: what
// reading dst through a VerifyingReader does, without an intermediate
// buffer. dst holds verified bytes only if ReadVerified returns nil; on
// any error its content must be discarded.
func ReadVerified(r io.Reader, dst []byte, want Digests) error {
	return ReadVerifiedTee(r, dst, want, nil)
}

// ReadVerifiedTee is ReadVerified that also writes the bytes, in order, to
// tee (if not nil) from another goroutine, so that writing them (to a cache
// file, say) overlaps receiving and hashing the rest. What tee receives is
// unverified until ReadVerifiedTee returns nil: write it somewhere private
// and publish it only then. An error from tee stops the read and is
// returned.
//
// A body of a MiB or more is hashed on another goroutine too, chunk by
// chunk as it arrives, so that receiving (TLS decryption, the socket) and
// hashing use two cores. Every goroutine has exited when ReadVerifiedTee
// returns.
func ReadVerifiedTee(r io.Reader, dst []byte, want Digests, tee io.Writer) error {
	if len(want) == 0 {
		return errors.New("at least one content digest value must be specified")
	}
	algs := want.sorted()
	for _, a := range algs {
		if a.Size() == 0 {
			return fmt.Errorf("unknown digest algorithm %q", a)
		}
	}
	v := &verifiedRead{dst: dst, h: NewHasher(algs...)}
	if len(dst) >= pipelineMin {
		v.hashStage = startStage(func(c []byte) error { v.h.Write(c); return nil }, nil)
		v.stages = append(v.stages, v.hashStage)
	}
	if tee != nil {
		v.teeStage = startStage(func(c []byte) error { _, err := tee.Write(c); return err }, nil)
		v.stages = append(v.stages, v.teeStage)
	}
	err := v.fill(r)
	if err == nil && !v.eof {
		err = checkEnd(r, len(dst))
	}
	return v.finish(err, want)
}

// verifiedRead is the state of one ReadVerifiedTee.
type verifiedRead struct {
	dst []byte
	h   *Hasher
	// hashStage hashes (nil: the reading goroutine hashes); teeStage
	// writes to the tee (nil: no tee). stages is both, those present.
	hashStage, teeStage *stage
	stages              []*stage
	n                   int  // bytes read into dst
	mark                int  // bytes handed to the stages
	eof                 bool // the reader said io.EOF
}

// fill reads r into dst until dst is full, r ends, or the tee fails
// (errTee), handing each pipelineChunk to the stages as it arrives.
func (v *verifiedRead) fill(r io.Reader) error {
	for v.n < len(v.dst) {
		m, err := r.Read(v.dst[v.n:])
		if v.hashStage == nil {
			v.h.Write(v.dst[v.n : v.n+m])
		}
		v.n += m
		if len(v.stages) > 0 && v.n-v.mark >= pipelineChunk {
			v.flush()
		}
		if err == io.EOF {
			v.eof = true
			if v.n < len(v.dst) {
				return fmt.Errorf("%w, expected: %d, got %d", ErrLengthMismatch, len(v.dst), v.n)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if v.teeStage != nil {
			select {
			case <-v.teeStage.failed:
				return errTee
			default:
			}
		}
	}
	return nil
}

// flush hands the bytes read since the last flush to the stages.
func (v *verifiedRead) flush() {
	for _, s := range v.stages {
		s.send(v.dst[v.mark:v.n])
	}
	v.mark = v.n
}

// checkEnd requires r to end now, after the expected length bytes.
func checkEnd(r io.Reader, length int) error {
	var one [1]byte
	switch m, err := io.ReadFull(r, one[:]); {
	case m > 0:
		return fmt.Errorf("%w: more than the expected %d bytes", ErrLengthMismatch, length)
	case err != io.EOF:
		return err
	}
	return nil
}

// finish flushes the rest (if the read succeeded), waits for the stages
// and decides: the read's error, else the tee's, else the digest check.
func (v *verifiedRead) finish(err error, want Digests) error {
	if err == nil && v.mark < v.n {
		v.flush()
	}
	failed := err != nil
	var teeErr error
	if v.hashStage != nil {
		v.hashStage.close(failed)
	}
	if v.teeStage != nil {
		teeErr = v.teeStage.close(failed && err != errTee)
	}
	switch {
	case err == errTee:
		return teeErr
	case err != nil:
		return err
	case teeErr != nil:
		return teeErr
	case !v.h.Sum().Equal(want):
		return ErrDigestMismatch
	}
	return nil
}

// errTee stops ReadVerifiedTee's read loop; the tee's own error is
// returned instead.
var errTee = errors.New("tee failed")

// PipelinedVerifyingReader is a VerifyingReader for large streams that
// hashes on another goroutine: Read copies what it passes through into a
// chunk (a copy costs a few percent of a hash) that a hashing goroutine
// consumes, so that receiving and hashing use two cores. Like a
// VerifyingReader it returns io.EOF only once the whole stream arrived and
// matched; Close must be called when the reader is abandoned before that.
type PipelinedVerifyingReader struct {
	r      io.Reader
	want   Digests
	length int64
	n      int64
	h      *Hasher
	hash   *stage
	free   chan *[]byte
	cur    *[]byte
	err    error
	closed bool
}

// chunkBufs are PipelinedVerifyingReader chunks.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, pipelineChunk); return &b }}

// PipelinedReaderBuffers is how many bytes of chunk buffers a
// PipelinedVerifyingReader of a stream of length bytes holds from
// NewPipelinedVerifyingReader until it ends or is closed: none below a
// MiB (hashed inline), else 1.5 MiB, whatever the length. A server that
// accepts many uploads at once can budget them.
func PipelinedReaderBuffers(length int64) int64 {
	if length < pipelineMin {
		return 0
	}
	return (copyDepth + 2) * pipelineChunk
}

// NewPipelinedVerifyingReader wraps r like NewVerifyingReader; bodies
// shorter than a MiB are hashed inline.
func NewPipelinedVerifyingReader(r io.Reader, want Digests, length int64) (*PipelinedVerifyingReader, error) {
	v, err := NewVerifyingReader(r, want, length)
	if err != nil {
		return nil, err
	}
	p := &PipelinedVerifyingReader{r: r, want: want, length: length, h: v.h}
	if length >= pipelineMin {
		p.free = make(chan *[]byte, copyDepth+2)
		for range copyDepth + 2 {
			p.free <- chunkBufs.Get().(*[]byte)
		}
		p.hash = startStage(func(c []byte) error { p.h.Write(c); return nil }, func(c []byte) {
			b := c[:0]
			p.free <- &b
		})
	}
	return p, nil
}

// Read implements io.Reader.
func (v *PipelinedVerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	remaining := v.length - v.n
	if remaining == 0 {
		var one [1]byte
		n, err := io.ReadFull(v.r, one[:])
		switch {
		case n > 0:
			v.err = fmt.Errorf("%w: more than the expected %d bytes", ErrLengthMismatch, v.length)
		case err != io.EOF && err != io.ErrUnexpectedEOF:
			v.err = err
		default:
			v.err = v.finish()
		}
		return 0, v.err
	}
	if int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.consume(p[:n])
	if err == io.EOF {
		if v.n != v.length {
			v.err = fmt.Errorf("%w, expected: %d, got %d", ErrLengthMismatch, v.length, v.n)
			v.Close()
			return n, v.err
		}
		v.err = v.finish()
		return n, v.err
	}
	if err != nil {
		v.err = err
		v.Close()
	}
	return n, err
}

// consume hashes b, or copies it into chunks for the hashing goroutine.
func (v *PipelinedVerifyingReader) consume(b []byte) {
	if v.hash == nil {
		v.h.Write(b)
		return
	}
	for len(b) > 0 {
		if v.cur == nil {
			v.cur = <-v.free
		}
		c := *v.cur
		k := copy(c[len(c):cap(c)], b)
		c = c[:len(c)+k]
		*v.cur = c
		b = b[k:]
		if len(c) == cap(c) {
			v.hash.send(c)
			v.cur = nil
		}
	}
}

// finish waits for the hash and compares it.
func (v *PipelinedVerifyingReader) finish() error {
	if v.hash != nil {
		if v.cur != nil && len(*v.cur) > 0 {
			v.hash.send(*v.cur)
			v.cur = nil
		}
		v.shutdown(false)
	}
	if !v.h.Sum().Equal(v.want) {
		return ErrDigestMismatch
	}
	return io.EOF
}

// shutdown stops the hashing goroutine and returns the chunks to the pool.
func (v *PipelinedVerifyingReader) shutdown(abandon bool) {
	if v.closed || v.hash == nil {
		v.closed = true
		return
	}
	v.closed = true
	v.hash.close(abandon)
	if v.cur != nil {
		v.free <- v.cur
		v.cur = nil
	}
	close(v.free)
	for b := range v.free {
		*b = (*b)[:0]
		chunkBufs.Put(b)
	}
}

// Close stops the hashing goroutine of a reader that was not read to its
// end (it has already stopped if Read returned an error). It is safe to
// call more than once, and after Read returned an error.
func (v *PipelinedVerifyingReader) Close() error {
	v.shutdown(true)
	if v.err == nil {
		v.err = errors.New("verifying reader closed")
	}
	return nil
}

// Len is the number of bytes read so far.
func (v *PipelinedVerifyingReader) Len() int64 { return v.n }
