package sealed

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
)

// errGuard ends a hostile listing or read that the code under test did
// not stop.
var errGuard = errors.New("test guard: the volume did not stop listing or reading")

// guardPages is how many pages a hostileListDir serves before errGuard:
// far more entries than maxListed under the tests' manifest bound.
const guardPages = 2000

// hostileListDir is a backing directory whose listing the host makes
// up: page(cookie, max) returns the entries served at cookie. It counts
// the pages asked for and fails past guardPages, so that a listing the
// volume does not stop ends the test instead of hanging it.
type hostileListDir struct {
	vfs.Dir
	page    func(cookie uint64, max int) []vfs.Dirent
	pages   int
	entries int
	// onPage, if set, is called with the number of pages served so far.
	onPage func(n int)
}

func (d *hostileListDir) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	d.pages++
	if d.pages > guardPages {
		return nil, errGuard
	}
	if d.onPage != nil {
		d.onPage(d.pages)
	}
	ents := d.page(cookie, max)
	d.entries += len(ents)
	return ents, nil
}

// objectName is a distinct content object name for n.
func objectName(n uint64) string {
	var id format.ID
	for i := range 8 {
		id[i] = byte(n >> (8 * i))
	}
	return format.ObjectName(id)
}

// endless serves max new entries per page, named by name, their cookies
// advancing.
func endless(name func(uint64) string) func(uint64, int) []vfs.Dirent {
	return func(cookie uint64, max int) []vfs.Dirent {
		ents := make([]vfs.Dirent, max)
		for i := range ents {
			n := cookie + uint64(i)
			ents[i] = vfs.Dirent{Next: n + 1, Name: name(n), Type: 4}
		}
		return ents
	}
}

// TestHostileListing: opening a volume reads at most as many entries of
// its host directory's listing as a valid volume holds, refuses a
// listing that does not advance, and stops when its context ends; each
// is refused as not a valid volume (an integrity error), never listed
// forever (unbounded memory, or a stall past the Keep's deadline).
func TestHostileListing(t *testing.T) {
	tests := []struct {
		name string
		// small lowers the manifest bound (and so the listing's) to
		// 16 KiB; otherwise it is the default 1 GiB (17.6 million
		// entries, far past guardPages).
		small bool
		page  func(cookie uint64, max int) []vfs.Dirent
	}{
		{"endless objects", true, endless(objectName)},
		{"endless foreign names", true, endless(func(n uint64) string { return fmt.Sprintf("%0200d", n) })},
		{"endless dots", true, endless(func(uint64) string { return "." })},
		{"cycle", true, func(cookie uint64, max int) []vfs.Dirent {
			// 1 → 2 → 1 → …: each page advances, the listing never ends.
			return []vfs.Dirent{{Next: cookie%2 + 1, Name: objectName(cookie)}}
		}},
		{"cookie stuck", false, func(cookie uint64, max int) []vfs.Dirent {
			return []vfs.Dirent{{Next: cookie, Name: objectName(1)}, {Next: cookie, Name: format.ManifestName}}
		}},
		{"cookie back to the start", false, func(cookie uint64, max int) []vfs.Dirent {
			if cookie == 0 {
				return []vfs.Dirent{{Next: 7, Name: objectName(1)}}
			}
			return []vfs.Dirent{{Next: 0, Name: objectName(2)}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.small {
				setMaxManifest(t, 16<<10)
			}
			d := &hostileListDir{Dir: backing(t, t.TempDir(), false), page: tc.page}
			v, err := Open(t.Context(), d, keySource(t, testKey), Options{Name: "data", Logger: testLogger(t)})
			if err == nil {
				v.Close()
				t.Fatal("opened a volume whose listing never ends")
			}
			if errors.Is(err, errGuard) || !errors.Is(err, vfs.ErrIntegrity) {
				t.Fatalf("open after %d pages: %v; want an integrity error well before %d pages", d.pages, err, guardPages)
			}
			if tc.small && int64(d.entries) > maxListed()+listPage {
				t.Fatalf("listed %d entries, past the bound of %d and a page", d.entries, maxListed())
			}
			t.Logf("refused after %d pages: %v", d.pages, err)
		})
	}
}

// TestListingStopsWithContext: with the default bound (millions of
// entries), an endless listing stops as soon as the open's context ends.
func TestListingStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const stopAt = 10
	d := &hostileListDir{Dir: backing(t, t.TempDir(), false), page: endless(objectName), onPage: func(n int) {
		if n == stopAt {
			cancel()
		}
	}}
	_, err := Open(ctx, d, keySource(t, testKey), Options{Name: "data", Logger: testLogger(t)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("open after %d pages: %v; want it stopped by its cancelled context", d.pages, err)
	}
	if d.pages != stopAt {
		t.Fatalf("listed %d pages; the context ended during page %d", d.pages, stopAt)
	}
}

// TestFileCountBound: a volume refuses (ENOSPC) a file past the most a
// manifest can list, so that a crash never leaves more objects than an
// open lists: the volume opens again at its last commit.
func TestFileCountBound(t *testing.T) {
	setMaxManifest(t, 16<<10)
	limit := format.MaxFiles(maxManifest)
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "kept", []byte("kept"), true)
	var i int64
	var err error
	for i = 1; i <= limit; i++ {
		var f fd.File
		f, err = root.Open(fmt.Sprintf("f%d", i), vfs.OpenOptions{Create: true, Write: true})
		if err != nil {
			break
		}
		if _, err = f.(vfs.File).WriteAt([]byte("x"), 0); err != nil {
			t.Fatalf("write file %d: %v", i, err)
		}
		f.Close()
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("file %d of a volume that lists at most %d: %v, want ENOSPC", i, limit, err)
	}
	if i != limit {
		t.Fatalf("ENOSPC at file %d, want at %d (with the first, %d)", i, limit, limit)
	}
	// Write every file's object, then crash.
	for _, c := range v.files {
		c.mu.Lock()
		err := c.flushLocked()
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := objects(t, dir); int64(n) != limit {
		t.Fatalf("%d objects on the host, want %d", n, limit)
	}
	abandon(v)
	_, root = mustOpen(t, dir, Options{})
	defer root.Close()
	checkFile(t, root, "kept", []byte("kept"))
}

// tricklingDir is a backing directory whose manifest the host states is
// size bytes and serves a byte per read, counting the reads: past
// guardReads it fails, so that a read the volume does not stop ends the
// test instead of crawling on.
type tricklingDir struct {
	vfs.Dir
	size   uint64
	reads  int
	onRead func(n int)
}

const guardReads = 3 << 20

type tricklingFile struct {
	vfs.File
	d *tricklingDir
}

func (d *tricklingDir) Open(path string, o vfs.OpenOptions) (fd.File, error) {
	f, err := d.Dir.Open(path, o)
	if err != nil || path != format.ManifestName {
		return f, err
	}
	return &tricklingFile{File: f.(vfs.File), d: d}, nil
}

func (f *tricklingFile) Stat() (vfs.Stat, error) {
	st, err := f.File.Stat()
	st.Size = f.d.size
	return st, err
}

func (f *tricklingFile) ReadAt(p []byte, off int64) (int, error) {
	f.d.reads++
	if f.d.reads > guardReads {
		return 0, errGuard
	}
	f.d.onRead(f.d.reads)
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = 0
	return 1, nil
}

// TestManifestReadStopsWithContext: a host that serves the manifest a
// byte at a time (a million requests per MiB over a channel) cannot keep
// an open going once its context ends: it stops at the next 1 MiB piece.
func TestManifestReadStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	_, root := mustOpen(t, dir, Options{})
	root.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const stopAt = 1000
	d := &tricklingDir{Dir: backing(t, dir, false), size: 8 << 20, onRead: func(n int) {
		if n == stopAt {
			cancel()
		}
	}}
	_, err := Open(ctx, d, keySource(t, testKey), Options{Name: "data", Logger: testLogger(t)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("open after %d reads: %v; want it stopped by its cancelled context", d.reads, err)
	}
	if d.reads > readPiece {
		t.Fatalf("%d reads, more than the %d-byte piece during which the context ended", d.reads, readPiece)
	}
}
