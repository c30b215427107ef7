package sealed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/keys"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func keySource(t testing.TB, key []byte) keys.Source {
	t.Helper()
	s, err := keys.NewStatic(key, "file:test-key", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLogger logs to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newFormat is the format of the volumes the tests create (0:
// format.Current); forFormats sets it.
var newFormat format.Format

// forFormats runs test once on volumes created in each format (the
// package's tests are not parallel).
func forFormats(t *testing.T, test func(t *testing.T)) {
	for _, f := range []format.Format{format.V1, format.V2} {
		t.Run(fmt.Sprint("format ", f), func(t *testing.T) {
			old := newFormat
			newFormat = f
			defer func() { newFormat = old }()
			test(t)
		})
	}
}

// wantFormat is the format forFormats (or the default) creates.
func wantFormat() format.Format {
	if newFormat == 0 {
		return format.Current
	}
	return newFormat
}

func openVolume(t testing.TB, dir string, o Options) (*Volume, error) {
	t.Helper()
	if o.Name == "" {
		o.Name = "data"
	}
	if o.format == 0 {
		o.format = newFormat
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	return Open(context.Background(), backing(t, dir, o.ReadOnly), keySource(t, testKey), o)
}

// backing is the host directory through the hostfs source, as in a Keep.
func backing(t testing.TB, dir string, readonly bool) vfs.Dir {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := hostfs.New(f, readonly)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustOpen(t testing.TB, dir string, o Options) (*Volume, vfs.Dir) {
	t.Helper()
	v, err := openVolume(t, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return v, v.Root()
}

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func openFile(t testing.TB, d vfs.Dir, path string, o vfs.OpenOptions) vfs.File {
	t.Helper()
	f, err := d.Open(path, o)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f.(vfs.File)
}

func writeFile(t testing.TB, d vfs.Dir, path string, data []byte, sync bool) {
	t.Helper()
	f := openFile(t, d, path, vfs.OpenOptions{Create: true, Trunc: true, Write: true, Read: true})
	// Odd-sized writes, so that chunks are assembled in the cache too.
	for off := 0; off < len(data); {
		n := min(len(data)-off, 100_000)
		if _, err := f.WriteAt(data[off:off+n], int64(off)); err != nil {
			t.Fatalf("write %s at %d: %v", path, off, err)
		}
		off += n
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatalf("sync %s: %v", path, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(d vfs.Dir, path string) ([]byte, error) {
	f, err := d.Open(path, vfs.OpenOptions{Read: true, Follow: true})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vf := f.(vfs.File)
	st, err := vf.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size)
	// Read in 4 KiB pieces past the first chunk, whole below: both paths.
	off := 0
	for off < len(buf) {
		n := 4096
		if off == 0 {
			n = min(len(buf), 3<<16)
		}
		m, err := vf.ReadAt(buf[off:min(len(buf), off+n)], int64(off))
		off += m
		if err != nil && !(errors.Is(err, io.EOF) && off == len(buf)) {
			return nil, err
		}
	}
	return buf, nil
}

func checkFile(t testing.TB, d vfs.Dir, path string, want []byte) {
	t.Helper()
	got, err := readFile(d, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d written", path, len(got), len(want))
	}
}

func TestRoundTrip(t *testing.T) { forFormats(t, testRoundTrip) }

func testRoundTrip(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	if v.Version() != 1 || v.Format() != wantFormat() {
		t.Fatalf("new volume version %d format %d, want 1 and %d", v.Version(), v.Format(), wantFormat())
	}
	big := pattern(1, 8<<20+12345)
	small := []byte("top secret: the plaintext marker 7f1c")
	if err := root.Mkdir("sub"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "sub/big", big, false)
	writeFile(t, root, "small", small, false)
	writeFile(t, root, "empty", nil, false)
	// A sparse file: a write past a hole.
	f := openFile(t, root, "sparse", vfs.OpenOptions{Create: true, Write: true, Read: true})
	if _, err := f.WriteAt([]byte("end"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := root.Symlink("sub/big", "link"); err != nil {
		t.Fatal(err)
	}
	if err := root.Link("small", false, root, "small2"); err != nil {
		t.Fatal(err)
	}
	if err := root.Rename("small2", root, "sub/small3"); err != nil {
		t.Fatal(err)
	}
	// Overwrite the middle of big after a commit (copy-on-write slots),
	// then shrink it to a partial chunk.
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	f = openFile(t, root, "sub/big", vfs.OpenOptions{Write: true, Read: true})
	patch := pattern(2, 200_000)
	if _, err := f.WriteAt(patch, 1<<20+7); err != nil {
		t.Fatal(err)
	}
	copy(big[1<<20+7:], patch)
	if err := f.Truncate(5<<20 + 999); err != nil {
		t.Fatal(err)
	}
	big = big[:5<<20+999]
	f.Close()
	before := v.Version()
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	if v.Version() <= before {
		t.Fatalf("close did not commit: version %d, was %d", v.Version(), before)
	}

	// The host sees only the manifest and opaque objects, no plaintext
	// and no names.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_, ok := format.ParseObjectName(e.Name())
		if !ok && e.Name() != format.ManifestName {
			t.Errorf("host directory holds %q", e.Name())
		}
		if info, _ := e.Info(); ok && info.Size()%format.PadSize != 0 {
			t.Errorf("object %s is %d bytes, not a multiple of %d: it shows an exact size", e.Name(), info.Size(), format.PadSize)
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		for _, s := range []string{"top secret", "small3", "sub/big"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("host object %s contains plaintext %q", e.Name(), s)
			}
		}
		if bytes.Contains(b, big[3<<20:3<<20+64]) {
			t.Errorf("host object %s contains file data in plaintext", e.Name())
		}
	}

	v2, root2 := mustOpen(t, dir, Options{MinVersion: v.Version()})
	defer root2.Close()
	checkFile(t, root2, "sub/big", big)
	checkFile(t, root2, "small", small)
	checkFile(t, root2, "sub/small3", small)
	checkFile(t, root2, "empty", nil)
	sparse := make([]byte, 1<<20+3)
	copy(sparse[1<<20:], "end")
	checkFile(t, root2, "sparse", sparse)
	checkFile(t, root2, "link", big)
	if target, err := root2.Readlink("link"); err != nil || target != "sub/big" {
		t.Fatalf("readlink: %q, %v", target, err)
	}
	if st, err := root2.StatAt("small", false); err != nil || st.Nlink != 2 || st.Size != uint64(len(small)) {
		t.Fatalf("stat small: %+v, %v", st, err)
	}
	if v2.Version() != v.Version() || v2.Format() != wantFormat() {
		t.Fatalf("reopened at version %d format %d, closed at %d format %d", v2.Version(), v2.Format(), v.Version(), wantFormat())
	}
	// Deleting a file removes its object once the deletion is committed.
	if err := root2.Unlink("sub/small3"); err != nil {
		t.Fatal(err)
	}
	if err := root2.Unlink("small"); err != nil {
		t.Fatal(err)
	}
	n := objects(t, dir)
	if err := root2.Sync(); err != nil {
		t.Fatal(err)
	}
	if m := objects(t, dir); m != n-1 {
		t.Fatalf("%d objects after deleting a file, %d before", m, n)
	}
}

func objects(t testing.TB, dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, ok := format.ParseObjectName(e.Name()); ok {
			n++
		}
	}
	return n
}

// TestUncommitted: what was never synced is not in the volume, and the
// objects it wrote are collected at the next open.
func TestUncommitted(t *testing.T) { forFormats(t, testUncommitted) }

func testUncommitted(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "kept", []byte("kept"), true)
	writeFile(t, root, "lost", pattern(3, 300_000), false)
	f := openFile(t, root, "kept", vfs.OpenOptions{Write: true})
	f.WriteAt(pattern(4, 200_000), 0) // flushes chunks to new slots
	f.Close()
	_ = v // abandoned without Close: a crash
	_, root2 := mustOpen(t, dir, Options{})
	defer root2.Close()
	checkFile(t, root2, "kept", []byte("kept"))
	if _, err := root2.StatAt("lost", false); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("uncommitted file: %v", err)
	}
	if n := objects(t, dir); n != 1 {
		t.Fatalf("%d objects left after collecting, want 1", n)
	}
}

func TestRefuse(t *testing.T) { forFormats(t, testRefuse) }

func testRefuse(t *testing.T) {
	t.Run("objects without a manifest", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, format.ObjectName(format.ID{1})), []byte("x"), 0o600)
		if _, err := openVolume(t, dir, Options{}); !errors.Is(err, vfs.ErrIntegrity) {
			t.Fatalf("open: %v, want an integrity error", err)
		}
	})
	t.Run("empty dir with min_version", func(t *testing.T) {
		if _, err := openVolume(t, t.TempDir(), Options{MinVersion: 2}); !errors.Is(err, vfs.ErrIntegrity) {
			t.Fatalf("open: %v, want an integrity error", err)
		}
	})
	t.Run("empty dir read-only", func(t *testing.T) {
		if _, err := openVolume(t, t.TempDir(), Options{ReadOnly: true}); err == nil {
			t.Fatal("opened an empty read-only volume")
		}
	})
	dir := t.TempDir()
	_, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "f", []byte("data"), true)
	root.Close()
	t.Run("wrong key", func(t *testing.T) {
		_, err := Open(context.Background(), backing(t, dir, false), keySource(t, bytes.Repeat([]byte{1}, 32)), Options{Name: "data", Logger: testLogger(t), format: newFormat})
		if !errors.Is(err, vfs.ErrIntegrity) {
			t.Fatalf("open: %v, want an integrity error", err)
		}
	})
	t.Run("wrong name", func(t *testing.T) {
		if _, err := openVolume(t, dir, Options{Name: "other"}); !errors.Is(err, vfs.ErrIntegrity) {
			t.Fatalf("open: %v, want an integrity error", err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		_, root := mustOpen(t, dir, Options{ReadOnly: true})
		defer root.Close()
		checkFile(t, root, "f", []byte("data"))
		if _, err := root.Open("g", vfs.OpenOptions{Create: true, Write: true}); !errors.Is(err, syscall.EROFS) {
			t.Fatalf("create in a read-only volume: %v", err)
		}
	})
}

// tamperVolume makes a volume with two multi-chunk files and a third
// file rewritten after a first commit, and returns the directory, the
// contents and the objects' names by file.
func tamperVolume(t *testing.T) (dir string, files map[string][]byte, objs map[string]string, old map[string][]byte, oldManifest []byte, oldVersion uint64) {
	dir = t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	files = map[string][]byte{"a": pattern(10, 300_000), "b": pattern(11, 300_000)}
	for name, data := range files {
		writeFile(t, root, name, data, true)
	}
	oldVersion = v.Version()
	oldManifest, _ = os.ReadFile(filepath.Join(dir, format.ManifestName))
	old = snapshotDir(t, dir)
	// Rewrite a's first chunk: a new slot, a newer tag.
	files["a"] = append([]byte(nil), files["a"]...)
	copy(files["a"], pattern(12, 1000))
	f := openFile(t, root, "a", vfs.OpenOptions{Write: true})
	f.WriteAt(files["a"][:1000], 0)
	f.Sync()
	f.Close()
	objs = map[string]string{}
	for name := range files {
		objs[name] = objectOf(t, root, name)
	}
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	return
}

func objectOf(t testing.TB, d vfs.Dir, name string) string {
	t.Helper()
	f, err := d.Open(name, vfs.OpenOptions{Read: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return format.ObjectName(f.(interface{ Content() tree.Content }).Content().(*content).id)
}

func snapshotDir(t *testing.T, dir string) map[string][]byte {
	m := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

// TestTamper: every change the host can make to a closed volume is
// detected: reported as an integrity error (EIO to the guest), never
// returned as data.
func TestTamper(t *testing.T) { forFormats(t, testTamper) }

// Offsets in a manifest header.
const (
	formatEnd  = len(format.Magic) + 4         // past the format field
	versionEnd = formatEnd + format.IDSize + 8 // past the volume version
)

func testTamper(t *testing.T) {
	flip := func(b []byte, i int) []byte { b = append([]byte(nil), b...); b[i] ^= 0x01; return b }
	flipManifest := func(at func(b []byte) int) func(*testing.T, string, map[string]string, map[string][]byte, []byte) string {
		return func(t *testing.T, dir string, _ map[string]string, _ map[string][]byte, _ []byte) string {
			p := filepath.Join(dir, format.ManifestName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, flip(b, at(b)), 0o600)
			return ""
		}
	}
	cases := []struct {
		name string
		// tamper changes dir; it returns the file whose read must fail,
		// or "" when the volume must not even open.
		tamper func(t *testing.T, dir string, objs map[string]string, old map[string][]byte, oldManifest []byte) string
	}{
		{"flip a byte in a chunk", func(t *testing.T, dir string, objs map[string]string, _ map[string][]byte, _ []byte) string {
			p := filepath.Join(dir, objs["b"])
			b, _ := os.ReadFile(p)
			os.WriteFile(p, flip(b, 70_000), 0o600)
			return "b"
		}},
		{"flip a byte in the manifest", func(t *testing.T, dir string, _ map[string]string, _ map[string][]byte, _ []byte) string {
			p := filepath.Join(dir, format.ManifestName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, flip(b, len(b)/2), 0o600)
			return ""
		}},
		{"flip a byte of the manifest's version", flipManifest(func([]byte) int { return versionEnd - 1 })},
		{"flip a byte of the manifest's format", flipManifest(func([]byte) int { return formatEnd - 1 })},
		{"flip the first byte of the manifest's nonce", flipManifest(func([]byte) int { return versionEnd })},
		{"flip the last byte of the manifest's nonce", flipManifest(func([]byte) int { return wantFormat().HeaderSize() - 1 })},
		{"flip a byte of the manifest's tag", flipManifest(func(b []byte) int { return len(b) - 1 })},
		{"swap two objects", func(t *testing.T, dir string, objs map[string]string, _ map[string][]byte, _ []byte) string {
			a, b := filepath.Join(dir, objs["a"]), filepath.Join(dir, objs["b"])
			os.Rename(a, a+".tmp")
			os.Rename(b, a)
			os.Rename(a+".tmp", b)
			return "a"
		}},
		{"truncate an object", func(t *testing.T, dir string, objs map[string]string, _ map[string][]byte, _ []byte) string {
			os.Truncate(filepath.Join(dir, objs["b"]), 200_000)
			return "b"
		}},
		{"restore an older object", func(t *testing.T, dir string, objs map[string]string, old map[string][]byte, _ []byte) string {
			os.WriteFile(filepath.Join(dir, objs["a"]), old[objs["a"]], 0o600)
			return "a"
		}},
		{"rename an object", func(t *testing.T, dir string, objs map[string]string, _ map[string][]byte, _ []byte) string {
			os.Rename(filepath.Join(dir, objs["b"]), filepath.Join(dir, format.ObjectName(format.ID{9})))
			return "b"
		}},
		{"delete an object", func(t *testing.T, dir string, objs map[string]string, _ map[string][]byte, _ []byte) string {
			os.Remove(filepath.Join(dir, objs["b"]))
			return "b"
		}},
		{"delete the manifest", func(t *testing.T, dir string, _ map[string]string, _ map[string][]byte, _ []byte) string {
			os.Remove(filepath.Join(dir, format.ManifestName))
			return ""
		}},
		{"truncate the manifest", func(t *testing.T, dir string, _ map[string]string, _ map[string][]byte, _ []byte) string {
			os.Truncate(filepath.Join(dir, format.ManifestName), 40)
			return ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, files, objs, old, oldManifest, _ := tamperVolume(t)
			bad := tc.tamper(t, dir, objs, old, oldManifest)
			v, err := openVolume(t, dir, Options{})
			if bad == "" {
				if !errors.Is(err, vfs.ErrIntegrity) {
					t.Fatalf("open: %v, want an integrity error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			root := v.Root()
			defer root.Close()
			got, err := readFile(root, bad)
			if !errors.Is(err, vfs.ErrIntegrity) {
				t.Fatalf("read %s: %d bytes, %v; want an integrity error", bad, len(got), err)
			}
			// The other file is intact.
			for name, data := range files {
				if name != bad && !strings.Contains(tc.name, "swap") {
					checkFile(t, root, name, data)
				}
			}
		})
	}
}

// TestRollback: an older complete manifest is accepted unless
// min_version pins a newer one; with the pin it is refused.
func TestRollback(t *testing.T) { forFormats(t, testRollback) }

func testRollback(t *testing.T) {
	dir, _, _, _, oldManifest, oldVersion := tamperVolume(t)
	v, err := openVolume(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	current := v.Version()
	v.Close()
	if current <= oldVersion {
		t.Fatalf("version %d not above the older %d", current, oldVersion)
	}
	os.WriteFile(filepath.Join(dir, format.ManifestName), oldManifest, 0o600)
	// Without a pin the rollback goes unnoticed by the manifest (the
	// documented limit); a's chunk it points at was rewritten to a new
	// slot, so the old state may still read back — that is the point.
	v, err = openVolume(t, dir, Options{})
	if err != nil {
		t.Fatalf("open an older manifest without min_version: %v", err)
	}
	if v.Version() != oldVersion {
		t.Fatalf("version %d, want %d", v.Version(), oldVersion)
	}
	v.tree = nil // not committed: the next open must see the same old manifest
	_, err = openVolume(t, dir, Options{MinVersion: current})
	if !errors.Is(err, vfs.ErrIntegrity) || !errors.Is(err, ErrRollback) {
		t.Fatalf("open with min_version %d: %v, want a rollback error", current, err)
	}
}

// TestConcurrent: writers of several files and commits from other
// handles run at once (the commit takes the namespace before it stops
// writers, so none of them deadlocks), and the result is whole.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	want := make([][]byte, 4)
	done := make(chan error, len(want)+1)
	stop := make(chan struct{})
	for w := range want {
		want[w] = pattern(uint64(100+w), 700_000)
		go func() {
			f, err := root.Open(fmt.Sprintf("f%d", w), vfs.OpenOptions{Create: true, Write: true, Read: true})
			if err != nil {
				done <- err
				return
			}
			vf := f.(vfs.File)
			for off := 0; off < len(want[w]); off += 50_000 {
				if _, err := vf.WriteAt(want[w][off:min(off+50_000, len(want[w]))], int64(off)); err != nil {
					done <- err
					return
				}
				if off%200_000 == 0 {
					if err := vf.Sync(); err != nil {
						done <- err
						return
					}
				}
			}
			done <- vf.Close()
		}()
	}
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
				if err := root.Sync(); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	for range want {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v, root = mustOpen(t, dir, Options{})
	defer v.Close()
	for w := range want {
		checkFile(t, root, fmt.Sprintf("f%d", w), want[w])
	}
	// The root handle closed, the volume still serves other handles.
	sub := openFile(t, root, "f0", vfs.OpenOptions{Read: true})
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatalf("read after the root was closed: %v", err)
	}
	sub.Close()
}

// TestObjectShrinks: an object does not keep the size of its file's
// largest past version once the slots beyond the live ones are free.
func TestObjectShrinks(t *testing.T) { forFormats(t, testObjectShrinks) }

func testObjectShrinks(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	defer v.Close()
	data := pattern(30, 1<<20)
	writeFile(t, root, "f", data, true)
	obj := filepath.Join(dir, objectOf(t, root, "f"))
	f := openFile(t, root, "f", vfs.OpenOptions{Write: true})
	if err := f.Truncate(100_000); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.WriteAt([]byte("x"), 99_999) // chunk 1 again, now to a low slot
	f.Sync()
	f.Close()
	st, err := os.Stat(obj)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 2<<16 {
		t.Fatalf("object of a 100,000-byte file is %d bytes", st.Size())
	}
	data = data[:100_000]
	data[99_999] = 'x'
	checkFile(t, root, "f", data)
	v.Close()
	_, root = mustOpen(t, dir, Options{})
	checkFile(t, root, "f", data)
}

// TestNoUnauthenticatedPlaintext: a chunk that fails authentication
// never reaches the caller's buffer, not even for a moment before the
// tag is compared (the buffer may be the guest's memory): whole-chunk,
// parallel-run and cached reads leave the failing chunk's bytes as they
// were.
func TestNoUnauthenticatedPlaintext(t *testing.T) { forFormats(t, testNoUnauthenticatedPlaintext) }

func testNoUnauthenticatedPlaintext(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "f", pattern(40, 4<<16), true)
	obj := filepath.Join(dir, objectOf(t, root, "f"))
	h, _ := root.Open("f", vfs.OpenOptions{Read: true})
	slot := h.(interface{ Content() tree.Content }).Content().(*content).chunks[1].slot
	h.Close()
	v.Close()
	b, _ := os.ReadFile(obj)
	b[int(slot)<<16+100] ^= 1 // in chunk 1
	os.WriteFile(obj, b, 0o600)
	_, root = mustOpen(t, dir, Options{})
	defer root.Close()
	f := openFile(t, root, "f", vfs.OpenOptions{Read: true})
	defer f.Close()
	for _, r := range []struct{ off, n int }{{1 << 16, 1 << 16}, {0, 4 << 16}, {1<<16 + 10, 100}} {
		buf := bytes.Repeat([]byte{0xee}, r.n)
		if _, err := f.ReadAt(buf, int64(r.off)); !errors.Is(err, vfs.ErrIntegrity) {
			t.Fatalf("read [%d, +%d): %v, want an integrity error", r.off, r.n, err)
		}
		lo, hi := max(1<<16, r.off)-r.off, min(2<<16, r.off+r.n)-r.off
		if !bytes.Equal(buf[lo:hi], bytes.Repeat([]byte{0xee}, hi-lo)) {
			t.Fatalf("read [%d, +%d): the failing chunk's bytes reached the buffer", r.off, r.n)
		}
	}
}

// TestVolumeIDPin: Options.VolumeID (Enarx.toml volume_id) refuses
// another volume of the same name and key, which min_version alone
// passes when its version is high enough, and an empty directory (the
// host deleted the volume); the pinned volume opens.
func TestVolumeIDPin(t *testing.T) { forFormats(t, testVolumeIDPin) }

func testVolumeIDPin(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "f", []byte("mine"), true)
	root.Close()
	id, version := v.ID(), v.Version()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	// Another volume of the same name and key, committed more often.
	other := t.TempDir()
	ov, oroot := mustOpen(t, other, Options{})
	for i := range 3 {
		writeFile(t, oroot, "f", []byte(fmt.Sprintf("theirs %d", i)), true)
	}
	oroot.Close()
	if ov.ID() == id || ov.Version() < version {
		t.Fatalf("other volume: id %s version %d, mine %s version %d", ov.ID(), ov.Version(), id, version)
	}
	ov.Close()

	t.Run("right id", func(t *testing.T) {
		v, root := mustOpen(t, dir, Options{VolumeID: &id, MinVersion: version})
		defer v.Close()
		defer root.Close()
		checkFile(t, root, "f", []byte("mine"))
	})
	t.Run("wrong id", func(t *testing.T) {
		// min_version alone passes the other volume: the gap the pin closes.
		w, err := openVolume(t, other, Options{MinVersion: version, ReadOnly: true})
		if err != nil {
			t.Fatalf("open the other volume with min_version only: %v", err)
		}
		w.Close()
		_, err = openVolume(t, other, Options{VolumeID: &id, MinVersion: version})
		if !errors.Is(err, vfs.ErrIntegrity) || !errors.Is(err, ErrVolumeID) ||
			!strings.Contains(err.Error(), id.String()) || !strings.Contains(err.Error(), ov.ID().String()) {
			t.Fatalf("open another volume with volume_id %s: %v, want a volume id error naming both ids", id, err)
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		empty := t.TempDir()
		_, err := openVolume(t, empty, Options{VolumeID: &id})
		if !errors.Is(err, vfs.ErrIntegrity) || !strings.Contains(err.Error(), "volume_id") {
			t.Fatalf("open an empty directory with volume_id: %v, want an integrity error", err)
		}
		if n, _ := os.ReadDir(empty); len(n) != 0 {
			t.Fatalf("created %d entries in the empty directory", len(n))
		}
	})
}

// TestVolumeIDLogged: the id to pin is logged at open and close, as the
// volume_id attribute, in the hexadecimal form volume_id takes.
func TestVolumeIDLogged(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	v, root := mustOpen(t, dir, Options{Logger: log})
	writeFile(t, root, "f", []byte("x"), true)
	root.Close()
	v.Close()
	v, root = mustOpen(t, dir, Options{Logger: log})
	root.Close()
	v.Close()
	want := `"volume_id":"` + v.ID().String() + `"`
	for _, msg := range []string{"sealed volume created", "sealed volume opened", "sealed volume closed"} {
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %q line with %s in:\n%s", msg, want, logs.String())
		}
	}
	if _, err := format.ParseID(v.ID().String()); err != nil {
		t.Fatalf("the logged id does not parse back: %v", err)
	}
}
