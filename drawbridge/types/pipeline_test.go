package types

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadVerified(t *testing.T) {
	body := make([]byte, pipelineMin+3*pipelineChunk+12345)
	rand.Read(body)
	sum, _ := Compute(body)
	only256 := Digests{SHA256: sum[SHA256]}

	check := func(name string, r io.Reader, size int, want Digests, wantErr error) {
		t.Helper()
		dst := make([]byte, size)
		err := ReadVerified(r, dst, want)
		switch {
		case wantErr == nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case wantErr == nil && !bytes.Equal(dst, body):
			t.Errorf("%s: wrong bytes", name)
		case wantErr != nil && !errors.Is(err, wantErr):
			t.Errorf("%s: got %v, want %v", name, err, wantErr)
		}
	}
	check("all digests", bytes.NewReader(body), len(body), sum, nil)
	check("sha-256", iotest.HalfReader(bytes.NewReader(body)), len(body), only256, nil)
	for _, at := range []int{0, pipelineChunk - 1, pipelineChunk, 2*pipelineChunk + 7, len(body) - 1} {
		bad := bytes.Clone(body)
		bad[at] ^= 1
		check("flipped byte", bytes.NewReader(bad), len(body), only256, ErrDigestMismatch)
	}
	check("short stream", bytes.NewReader(body[:len(body)-1]), len(body), only256, ErrLengthMismatch)
	check("long stream", io.MultiReader(bytes.NewReader(body), bytes.NewReader([]byte{0})), len(body), only256, ErrLengthMismatch)
	boom := errors.New("boom")
	check("reader error", io.MultiReader(bytes.NewReader(body[:pipelineChunk+1]), iotest.ErrReader(boom)), len(body), only256, boom)
	check("error after the end", io.MultiReader(bytes.NewReader(body), iotest.ErrReader(boom)), len(body), only256, boom)

	check("EOF with the last bytes", iotest.DataErrReader(bytes.NewReader(body)), len(body), only256, nil)
	bad := bytes.Clone(body)
	bad[len(bad)-1] ^= 1
	check("EOF with the last bytes, flipped", iotest.DataErrReader(bytes.NewReader(bad)), len(body), only256, ErrDigestMismatch)
	check("EOF early", iotest.DataErrReader(bytes.NewReader(body[:100])), len(body), only256, ErrLengthMismatch)
	var tee bytes.Buffer
	dst := make([]byte, len(body))
	if err := ReadVerifiedTee(iotest.HalfReader(bytes.NewReader(body)), dst, only256, &tee); err != nil || !bytes.Equal(tee.Bytes(), body) {
		t.Errorf("tee: %v, tee holds %d of %d bytes", err, tee.Len(), len(body))
	}
	if err := ReadVerifiedTee(bytes.NewReader(body), dst, only256, failingWriter{}); !errors.Is(err, errFailing) {
		t.Errorf("failing tee: got %v", err)
	}
	foo, _ := Compute([]byte("foo"))
	dst = make([]byte, 3)
	if err := ReadVerified(iotest.OneByteReader(bytes.NewReader([]byte("foo"))), dst, foo); err != nil || string(dst) != "foo" {
		t.Errorf("small body: %v %q", err, dst)
	}
	if err := ReadVerified(bytes.NewReader(nil), nil, Digests{}); err == nil {
		t.Error("empty digest set accepted")
	}
	empty, _ := Compute(nil)
	if err := ReadVerified(bytes.NewReader(nil), nil, empty); err != nil {
		t.Errorf("empty body: %v", err)
	}
}

var errFailing = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFailing }

func TestPipelinedVerifyingReader(t *testing.T) {
	for _, size := range []int{0, 3, pipelineMin - 1, pipelineMin + 3*pipelineChunk + 12345} {
		body := make([]byte, size)
		rand.Read(body)
		sum, _ := Compute(body)
		only256 := Digests{SHA256: sum[SHA256]}
		check := func(name string, r io.Reader, want Digests, wantErr error) {
			t.Helper()
			v, err := NewPipelinedVerifyingReader(r, want, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var got bytes.Buffer
			_, err = io.Copy(&got, v)
			switch {
			case wantErr == nil && err != nil:
				t.Errorf("%d bytes, %s: %v", size, name, err)
			case wantErr == nil && !bytes.Equal(got.Bytes(), body):
				t.Errorf("%d bytes, %s: wrong bytes", size, name)
			case wantErr != nil && !errors.Is(err, wantErr):
				t.Errorf("%d bytes, %s: got %v, want %v", size, name, err, wantErr)
			}
		}
		check("all digests", bytes.NewReader(body), sum, nil)
		check("sha-256, half reads", iotest.HalfReader(bytes.NewReader(body)), only256, nil)
		check("EOF with the last bytes", iotest.DataErrReader(bytes.NewReader(body)), only256, nil)
		check("long stream", io.MultiReader(bytes.NewReader(body), bytes.NewReader([]byte{0})), only256, ErrLengthMismatch)
		if size == 0 {
			continue
		}
		for _, at := range []int{0, size / 2, size - 1} {
			bad := bytes.Clone(body)
			bad[at] ^= 1
			check("flipped byte", bytes.NewReader(bad), only256, ErrDigestMismatch)
		}
		check("short stream", bytes.NewReader(body[:size-1]), only256, ErrLengthMismatch)
		boom := errors.New("boom")
		check("reader error", io.MultiReader(bytes.NewReader(body[:size/2]), iotest.ErrReader(boom)), only256, boom)

		// Abandoned half way: Close stops the hashing goroutine, and the
		// reader reports nothing but an error afterwards.
		v, _ := NewPipelinedVerifyingReader(bytes.NewReader(body), only256, int64(size))
		io.CopyN(io.Discard, v, int64(size/2))
		v.Close()
		v.Close()
		if n, err := v.Read(make([]byte, 10)); n != 0 || err == nil || err == io.EOF {
			t.Errorf("%d bytes: read after Close: %d, %v", size, n, err)
		}
	}
}
