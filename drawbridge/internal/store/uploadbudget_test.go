package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// bigFileTree is a tree of one file of size random bytes.
func bigFileTree(t *testing.T, size int) (root, file types.Node) {
	data := make([]byte, size)
	rand.Read(data)
	nodes, err := types.BuildTree(fstest.MapFS{"p/big.bin": {Data: data}}, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].Entry.Extra = nil
	nodes[1].Content = data
	return nodes[0], nodes[1]
}

// TestUploadsWithoutPipelineBudget: an upload of a MiB or more that finds
// no room for pipelined buffers (here: a budget of none) is verified
// exactly as a pipelined one: a tampered, truncated or long body stores
// nothing, and the right one is stored whole, on every Backend.
func TestUploadsWithoutPipelineBudget(t *testing.T) {
	for _, budget := range []int64{-1, 0} {
		forEachBackend(t, func(t *testing.T, r *Registry) {
			r.MaxUploadBuffers = budget
			ref := setupRepo(t, r)
			root, file := bigFileTree(t, 2<<20+3)
			m, b := tagBody(t, []types.Node{root})
			if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
				t.Fatal(err)
			}
			if _, err := r.CreateNode(ctx, ref, root.Path, root.Entry.Meta, bytes.NewReader(root.Content)); err != nil {
				t.Fatal(err)
			}
			tampered := bytes.Clone(file.Content)
			tampered[len(tampered)/2] ^= 1
			var inv *InvalidError
			if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, iotest.HalfReader(bytes.NewReader(tampered))); !errors.As(err, &inv) || !strings.Contains(err.Error(), "digest mismatch") {
				t.Fatalf("tampered: %v", err)
			}
			cut := io.MultiReader(bytes.NewReader(file.Content[:1<<20+5]), iotest.ErrReader(io.ErrUnexpectedEOF))
			if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, cut); err == nil {
				t.Fatal("a truncated body was accepted")
			}
			if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, bytes.NewReader(append(bytes.Clone(file.Content), 'x'))); !errors.As(err, &inv) {
				t.Fatalf("long: %v", err)
			}
			if _, err := r.b.Stat(ctx, nodeKey(ref.key(), file.Path)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a failed upload left a node: %v", err)
			}
			if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, iotest.OneByteReader(bytes.NewReader(file.Content))); err != nil {
				t.Fatal(err)
			}
			o, err := r.Node(ctx, ref, file.Path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(o.Content)
			o.Content.Close()
			if err != nil || !bytes.Equal(got, file.Content) {
				t.Fatalf("stored node: %d bytes, equal %v, %v", len(got), bytes.Equal(got, file.Content), err)
			}
			switch fb := r.UploadBufferFallbacks(); {
			case budget < 0 && fb != 4:
				t.Errorf("no budget: %d uploads took the plain path, want 4", fb)
			case budget == 0 && fb != 0:
				t.Errorf("default budget: %d uploads took the plain path, want none", fb)
			}
			if n := r.UploadBuffersInUse(); n != 0 {
				t.Errorf("%d bytes of the budget held after the uploads", n)
			}
		})
	}
}

// TestUploadBudgetAccounting: a pipelined upload holds the size of its
// buffers (the verifying reader's and the Backend's) while its body
// arrives; a second one at the same time, finding no room, is copied
// plainly; both are stored.
func TestUploadBudgetAccounting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		root, file := bigFileTree(t, 3<<20)
		cost := r.pipelineCost(file.Entry.Length, false)
		if want := types.PipelinedReaderBuffers(file.Entry.Length) + r.b.(pipelineCoster).pipelineBuffers(file.Entry.Length); cost != want || cost < 1<<20 {
			t.Fatalf("pipeline cost %d, want %d", cost, want)
		}
		r.MaxUploadBuffers = cost
		ref := setupRepo(t, r)
		refs := []TagRef{ref, {ref.User, ref.Repo, "1.0.1"}}
		for _, ref := range refs {
			m, b := tagBody(t, []types.Node{root})
			if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
				t.Fatal(err)
			}
			if _, err := r.CreateNode(ctx, ref, root.Path, root.Entry.Meta, bytes.NewReader(root.Content)); err != nil {
				t.Fatal(err)
			}
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := r.CreateNode(ctx, refs[0], file.Path, file.Entry.Meta, pr)
			done <- err
		}()
		pw.Write(file.Content[:1<<20]) // returns once the upload has read it
		if n := r.UploadBuffersInUse(); n != cost {
			t.Errorf("pipelined upload in progress: budget in use %d, want %d", n, cost)
		}
		if _, err := r.CreateNode(ctx, refs[1], file.Path, file.Entry.Meta, bytes.NewReader(file.Content)); err != nil {
			t.Fatal(err)
		}
		if n := r.UploadBufferFallbacks(); n != 1 {
			t.Errorf("%d uploads took the plain path, want 1", n)
		}
		pw.Write(file.Content[1<<20:])
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := r.UploadBuffersInUse(); n != 0 {
			t.Errorf("%d bytes of the budget held after the uploads", n)
		}
	})
}

// TestCopyPlain: copyPlain ends only at io.EOF, passes on other errors, and
// copies whatever its buffer's size.
func TestCopyPlain(t *testing.T) {
	data := make([]byte, 300<<10+7)
	rand.Read(data)
	for _, bufSize := range []int{1, 7, 4 << 10, plainCopyBuf, len(data) + 1} {
		var out bytes.Buffer
		if err := copyPlain(&out, iotest.HalfReader(bytes.NewReader(data)), make([]byte, bufSize)); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("buffer of %d: %v, equal %v", bufSize, err, bytes.Equal(out.Bytes(), data))
		}
		out.Reset()
		cut := io.MultiReader(bytes.NewReader(data[:min(bufSize, 1000)]), iotest.ErrReader(io.ErrUnexpectedEOF))
		if err := copyPlain(&out, cut, make([]byte, bufSize)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("buffer of %d, truncated body: %v", bufSize, err)
		}
		w := &failAfter{n: 100 << 10}
		if err := copyPlain(w, bytes.NewReader(data), make([]byte, bufSize)); !errors.Is(err, errDisk) {
			t.Fatalf("buffer of %d, write error: %v", bufSize, err)
		}
	}
	for _, n := range []int64{0, 1, 4 << 10, plainCopyBuf - 1, plainCopyBuf, 16 << 20} {
		buf, release := plainBuffer(n)
		if want := min(max(n, 1), plainCopyBuf); int64(len(buf)) != want {
			t.Errorf("buffer for a body of %d: %d bytes, want %d", n, len(buf), want)
		}
		release()
	}
}
