package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	got bytes.Buffer
}

var errDisk = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.got.Len()+len(p) > f.n {
		return 0, errDisk
	}
	return f.got.Write(p)
}

func TestCopyPipelined(t *testing.T) {
	data := make([]byte, 5<<20+333)
	rand.Read(data)
	for _, size := range []int{0, 1, 1 << 20, len(data)} {
		var out bytes.Buffer
		if err := copyPipelined(&out, iotest.HalfReader(bytes.NewReader(data[:size]))); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(out.Bytes(), data[:size]) {
			t.Fatalf("%d bytes: copy differs", size)
		}
	}
	boom := errors.New("digest mismatch")
	var out bytes.Buffer
	err := copyPipelined(&out, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("reader error: got %v", err)
	}
	// A body cut short (net/http: io.ErrUnexpectedEOF) is an error, not
	// the end of the content, whether it ends mid-buffer or on a boundary.
	for _, size := range []int{3, 1 << 20} {
		out.Reset()
		err = copyPipelined(&out, io.MultiReader(bytes.NewReader(data[:size]), iotest.ErrReader(io.ErrUnexpectedEOF)))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("truncated body after %d bytes: got %v", size, err)
		}
	}
	w := &failAfter{n: 2 << 20}
	if err := copyPipelined(w, bytes.NewReader(data)); !errors.Is(err, errDisk) {
		t.Fatalf("write error: got %v", err)
	}
	if !bytes.Equal(w.got.Bytes(), data[:w.got.Len()]) {
		t.Fatal("written prefix differs")
	}
}
