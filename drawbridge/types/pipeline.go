package types

import (
	"errors"
	"fmt"
	"io"
)

// teeChunk is how much ReadVerifiedTee reads before handing the bytes to
// its tee.
const teeChunk = 1 << 20

// ReadVerified fills dst from r, then checks that r ends there (exactly
// len(dst) bytes) and that the bytes match every digest in want: what
// reading dst through a VerifyingReader does, without an intermediate
// buffer. dst holds verified bytes only if ReadVerified returns nil; on
// any error its content must be discarded.
func ReadVerified(r io.Reader, dst []byte, want Digests) error {
	return ReadVerifiedTee(r, dst, want, nil)
}

// ReadVerifiedTee is ReadVerified that also writes the bytes, in order, to
// tee (if not nil) from a second goroutine, so that writing them (to a
// cache file, say) overlaps receiving and hashing the rest. What tee
// receives is unverified until ReadVerifiedTee returns nil: write it
// somewhere private and publish it only then. An error from tee stops the
// read and is returned.
//
// Bytes are hashed as soon as they are read, while they are still in the
// CPU cache; hashing them on another core would read them from memory a
// second time, which measured slower on a loaded machine.
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
	h := NewHasher(algs...)
	var (
		chunks    chan []byte
		done      chan struct{}
		teeFailed chan struct{}
		teeErr    error
	)
	if tee != nil {
		// Each chunk handed over is a region of dst that the reader no
		// longer writes; the channel orders the write before the tee's
		// read.
		chunks, done, teeFailed = make(chan []byte, 8), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for c := range chunks {
				if teeErr == nil {
					if _, teeErr = tee.Write(c); teeErr != nil {
						close(teeFailed)
					}
				}
			}
		}()
	}
	n, mark := 0, 0
	var err error
	eof := false
	for n < len(dst) {
		var m int
		m, err = r.Read(dst[n:])
		h.Write(dst[n : n+m])
		n += m
		if tee != nil && n-mark >= teeChunk {
			chunks <- dst[mark:n]
			mark = n
		}
		if err == io.EOF {
			eof, err = true, nil
			if n < len(dst) {
				err = fmt.Errorf("%w, expected: %d, got %d", ErrLengthMismatch, len(dst), n)
			}
		}
		if err != nil || eof {
			break
		}
		if tee != nil {
			select {
			case <-teeFailed:
				err = errTee
			default:
			}
			if err != nil {
				break
			}
		}
	}
	if tee != nil {
		if mark < n {
			chunks <- dst[mark:n]
		}
		close(chunks)
		<-done
		if teeErr != nil {
			return teeErr
		}
	}
	if err != nil {
		return err
	}
	if !eof {
		// The stream must end here.
		var one [1]byte
		switch m, rerr := io.ReadFull(r, one[:]); {
		case m > 0:
			return fmt.Errorf("%w: more than the expected %d bytes", ErrLengthMismatch, len(dst))
		case rerr != io.EOF:
			return rerr
		}
	}
	if !h.Sum().Equal(want) {
		return ErrDigestMismatch
	}
	return nil
}

// errTee stops ReadVerifiedTee's read loop; the tee's own error is
// returned instead.
var errTee = errors.New("tee failed")
