package sealed

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// TestModel runs random writes, truncations, reads, syncs, crashes
// (abandoning the volume) and reopenings over a few files, with a small
// chunk size so that chunk edges, holes, the cache and slot reuse are
// all exercised, and checks every read and every reopened volume against
// a plain in-memory model: the committed model after a crash, the
// current one otherwise.
func TestModel(t *testing.T) {
	forFormats(t, func(t *testing.T) {
		for seed := range uint64(4) {
			t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
		}
	})
}

func runModel(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 77))
	dir := t.TempDir()
	const cs = 4096
	opts := Options{ChunkSize: cs}
	v, root := mustOpen(t, dir, opts)
	names := []string{"a", "b", "c"}
	cur := map[string][]byte{}    // what the volume holds now
	synced := map[string][]byte{} // what the last commit holds
	commit := func() {
		synced = map[string][]byte{}
		for k, b := range cur {
			synced[k] = append([]byte(nil), b...)
		}
	}
	open := func(name string) vfs.File {
		f, err := root.Open(name, vfs.OpenOptions{Create: true, Read: true, Write: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cur[name]; !ok {
			cur[name] = []byte{}
		}
		return f.(vfs.File)
	}
	for op := range 1500 {
		name := names[r.IntN(len(names))]
		switch k := r.IntN(100); {
		case k < 45: // write
			f := open(name)
			off := r.IntN(12 * cs)
			n := r.IntN(3*cs) + 1
			if r.IntN(4) == 0 {
				off, n = r.IntN(6)*cs, cs*(1+r.IntN(3)) // whole chunks
			}
			data := pattern(r.Uint64(), n)
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				t.Fatalf("op %d: write: %v", op, err)
			}
			b := cur[name]
			if len(b) < off+n {
				b = append(b, make([]byte, off+n-len(b))...)
			}
			copy(b[off:], data)
			cur[name] = b
			f.Close()
		case k < 60: // truncate
			f := open(name)
			size := r.IntN(14 * cs)
			if err := f.Truncate(int64(size)); err != nil {
				t.Fatalf("op %d: truncate: %v", op, err)
			}
			b := cur[name]
			if size < len(b) {
				b = b[:size]
			} else {
				b = append(b, make([]byte, size-len(b))...)
			}
			cur[name] = b
			f.Close()
		case k < 80: // read a range
			if _, ok := cur[name]; !ok {
				continue
			}
			f := open(name)
			off := r.IntN(len(cur[name]) + 1)
			n := r.IntN(3 * cs)
			got := make([]byte, n)
			m, _ := f.ReadAt(got, int64(off))
			want := cur[name][off:min(len(cur[name]), off+n)]
			if !bytes.Equal(got[:m], want) {
				t.Fatalf("op %d: read %s [%d, +%d): differs", op, name, off, n)
			}
			f.Close()
		case k < 88: // sync
			if err := root.Sync(); err != nil {
				t.Fatalf("op %d: sync: %v", op, err)
			}
			commit()
		case k < 92: // unlink
			if _, ok := cur[name]; !ok {
				continue
			}
			if err := root.Unlink(name); err != nil {
				t.Fatalf("op %d: unlink: %v", op, err)
			}
			delete(cur, name)
		case k < 96: // crash: back to the last commit
			abandon(v)
			v, root = mustOpen(t, dir, opts)
			cur = map[string][]byte{}
			for k, b := range synced {
				cur[k] = append([]byte(nil), b...)
			}
			checkModel(t, op, root, cur)
		default: // clean close and reopen
			if err := v.Close(); err != nil {
				t.Fatalf("op %d: close: %v", op, err)
			}
			commit()
			v, root = mustOpen(t, dir, opts)
			checkModel(t, op, root, cur)
		}
	}
	v.Close()
}

func checkModel(t *testing.T, op int, root vfs.Dir, cur map[string][]byte) {
	t.Helper()
	for name, want := range cur {
		got, err := readFile(root, name)
		if err != nil {
			t.Fatalf("op %d: read %s: %v", op, name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("op %d: %s: %d bytes, want %d, or content differs", op, name, len(got), len(want))
		}
	}
	ents, err := root.ReadDir(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(cur)+2 {
		t.Fatalf("op %d: %d entries, want %d", op, len(ents)-2, len(cur))
	}
}
