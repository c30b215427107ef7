package sealed

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
)

// manifestHeader parses the header of the manifest in dir.
func manifestHeader(t *testing.T, dir string) (format.Header, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, format.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	h, sealed, err := format.ParseHeader(b)
	if err != nil {
		t.Fatalf("manifest header: %v", err)
	}
	return h, sealed
}

// TestNewVolumeFormat2: a new volume is created in format 2
// (XChaCha20-Poly1305, 24-byte nonces), whatever the tests' default.
func TestNewVolumeFormat2(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{format: 0})
	writeFile(t, root, "f", pattern(1, 3<<16+5), true)
	root.Close()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if v.Format() != format.V2 {
		t.Fatalf("new volume of format %d", v.Format())
	}
	h, sealed := manifestHeader(t, dir)
	if h.Format != format.V2 || format.V2.HeaderSize() != 60 {
		t.Fatalf("manifest of format %d, header size %d", h.Format, format.V2.HeaderSize())
	}
	if bytes.Equal(h.Nonce[12:], make([]byte, 12)) {
		t.Fatalf("nonce %x: its last 12 bytes are zero, not a 24-byte random nonce", h.Nonce)
	}
	// The chunk nonces too: every chunk entry carries 24 bytes.
	v, root = mustOpen(t, dir, Options{})
	defer v.Close()
	defer root.Close()
	c := contentOf(openFile(t, root, "f", vfs.OpenOptions{Read: true}))
	if len(c.chunks) != 4 {
		t.Fatalf("%d chunks", len(c.chunks))
	}
	for i, r := range c.chunks {
		if bytes.Equal(r.nonce[12:], make([]byte, 12)) {
			t.Fatalf("chunk %d nonce %x: not 24 random bytes", i, r.nonce)
		}
	}
	if _, err := format.ParseBody(sealed[:len(sealed)-format.TagSize], format.V2); err == nil {
		t.Fatal("the manifest body is in plaintext")
	}
}

// The format 1 volume in testdata/v1volume was written by the code
// before format 2 existed (chunk size 4 KiB, name "data", key testKey):
// hello.txt, sub/big.bin, sparse (a hole, then "tail"), and the symlink
// link to sub/big.bin.
const (
	v1FixtureID      = "282d54a7a36a980969bc01a1dd45edcd"
	v1FixtureVersion = 2
)

func v1FixtureFiles() map[string][]byte {
	sparse := make([]byte, 3*4096+10, 3*4096+14)
	return map[string][]byte{
		"hello.txt":   []byte("hello from a v1 sealed volume\n"),
		"sub/big.bin": pattern(100, 5*4096+123),
		"sparse":      append(sparse, "tail"...),
	}
}

// v1Fixture copies the recorded format 1 volume to a new directory (an
// open collects and rewrites: the recorded one stays as it was).
func v1Fixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "v1")
	if err := os.CopyFS(dir, os.DirFS("testdata/v1volume")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestV1Volume: a volume written in format 1 by the code before format
// 2 opens and reads; after changes and a commit it is still format 1 (a
// volume keeps its format) and reads back, also with its id and version
// pinned.
func TestV1Volume(t *testing.T) {
	dir := v1Fixture(t)
	if h, _ := manifestHeader(t, dir); h.Format != format.V1 {
		t.Fatalf("the recorded volume is of format %d, not 1", h.Format)
	}
	id, err := format.ParseID(v1FixtureID)
	if err != nil {
		t.Fatal(err)
	}
	v, root := mustOpen(t, dir, Options{VolumeID: &id, MinVersion: v1FixtureVersion})
	if v.Format() != format.V1 || v.ID() != id || v.Version() != v1FixtureVersion || v.chunk != 4096 {
		t.Fatalf("opened format %d id %s version %d chunk size %d", v.Format(), v.ID(), v.Version(), v.chunk)
	}
	files := v1FixtureFiles()
	check := func(root vfs.Dir) {
		t.Helper()
		for name, data := range files {
			checkFile(t, root, name, data)
		}
		if target, err := root.Readlink("link"); err != nil || target != "sub/big.bin" {
			t.Fatalf("readlink: %q, %v", target, err)
		}
	}
	check(root)

	// Rewrite chunks across an edge, grow a file past a hole, add a
	// file of whole chunks (sealed in parallel) and a partial one.
	patch := pattern(101, 5000)
	f := openFile(t, root, "sub/big.bin", vfs.OpenOptions{Write: true})
	if _, err := f.WriteAt(patch, 3000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	copy(files["sub/big.bin"][3000:], patch)
	f = openFile(t, root, "sparse", vfs.OpenOptions{Write: true})
	if _, err := f.WriteAt([]byte("more"), 8*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	files["sparse"] = append(append(files["sparse"], make([]byte, 8*4096-len(files["sparse"]))...), "more"...)
	files["new"] = pattern(102, 6*4096)
	files["sub/new-small"] = []byte("small")
	writeFile(t, root, "new", files["new"], false)
	writeFile(t, root, "sub/new-small", files["sub/new-small"], false)
	check(root)
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	version := v.Version()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if version <= v1FixtureVersion {
		t.Fatalf("no commit: version %d", version)
	}
	if h, sealed := manifestHeader(t, dir); h.Format != format.V1 || h.Version != version || h.VolumeID != id {
		t.Fatalf("after a commit: manifest of format %d, version %d, id %s (%d sealed bytes)", h.Format, h.Version, h.VolumeID, len(sealed))
	}

	v, root = mustOpen(t, dir, Options{VolumeID: &id, MinVersion: version})
	defer v.Close()
	defer root.Close()
	if v.Format() != format.V1 {
		t.Fatalf("reopened as format %d", v.Format())
	}
	check(root)
}

// relabel rewrites the manifest in dir into a header of format to,
// keeping everything else (the nonce cut to the format's size or padded
// with zeros; the ciphertext and tag as they are): what a host that
// wants the other format's handling of a volume can do.
func relabel(t *testing.T, dir string, to format.Format) {
	t.Helper()
	h, sealed := manifestHeader(t, dir)
	h.Format = to
	if err := os.WriteFile(filepath.Join(dir, format.ManifestName), append(h.Append(nil), sealed...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFormatRelabelled: the format is in the authenticated header and
// each format has its own keys, so a format 2 manifest rewritten into a
// format 1 header (a downgrade), or a format 1 manifest into a format 2
// header, fails authentication: the volume is refused (with or without
// its volume_id pinned), nothing in its directory is touched, and no new
// volume is made.
func TestFormatRelabelled(t *testing.T) {
	for from, to := range map[format.Format]format.Format{format.V1: format.V2, format.V2: format.V1} {
		dir := t.TempDir()
		v, root := mustOpen(t, dir, Options{format: from})
		writeFile(t, root, "f", []byte("data"), true)
		root.Close()
		id := v.ID()
		v.Close()
		relabel(t, dir, to)
		if h, _ := manifestHeader(t, dir); h.Format != to {
			t.Fatalf("relabelled manifest of format %d", h.Format)
		}
		before := snapshotDir(t, dir)
		for _, o := range []Options{{}, {VolumeID: &id}} {
			_, err := openVolume(t, dir, o)
			if !errors.Is(err, vfs.ErrIntegrity) || errors.Is(err, ErrVolumeID) || errors.Is(err, format.ErrUnknownFormat) {
				t.Fatalf("format %d manifest relabelled %d (volume_id pinned: %v): %v, want an authentication failure", from, to, o.VolumeID != nil, err)
			}
		}
		after := snapshotDir(t, dir)
		if len(after) != len(before) {
			t.Fatalf("a refused open changed the directory: %d entries, were %d", len(after), len(before))
		}
		for name, b := range before {
			if !bytes.Equal(after[name], b) {
				t.Fatalf("a refused open changed %s", name)
			}
		}
	}
}

// TestFormatSwap: a host cannot hand a Keep whose volume_id pins a
// format 2 volume a format 1 volume in its place. A volume keeps the
// format and the random id it was created with, so no format 1 volume
// of that id exists for the host to offer (relabelling fails, see
// TestFormatRelabelled); one of another id is refused by the pin.
func TestFormatSwap(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{format: format.V2})
	writeFile(t, root, "f", []byte("mine"), true)
	root.Close()
	id := v.ID()
	v.Close()

	old := v1Fixture(t)
	_, err := openVolume(t, old, Options{VolumeID: &id})
	if !errors.Is(err, ErrVolumeID) || !errors.Is(err, vfs.ErrIntegrity) {
		t.Fatalf("a format 1 volume in place of the pinned format 2 one: %v, want a volume id error", err)
	}
}

// TestUnknownFormat: a manifest of a format this Keep does not know (a
// newer enarx's, or the host's bytes) is refused with an error that says
// so, and the volume is left alone.
func TestUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	writeFile(t, root, "f", []byte("data"), true)
	root.Close()
	v.Close()
	p := filepath.Join(dir, format.ManifestName)
	b, _ := os.ReadFile(p)
	b[formatEnd-1] = 3
	os.WriteFile(p, b, 0o600)
	before := snapshotDir(t, dir)
	_, err := openVolume(t, dir, Options{})
	if !errors.Is(err, format.ErrUnknownFormat) || !errors.Is(err, vfs.ErrIntegrity) || !strings.Contains(err.Error(), "reads versions 1 and 2") {
		t.Fatalf("open a manifest of format 3: %v", err)
	}
	if after := snapshotDir(t, dir); len(after) != len(before) {
		t.Fatalf("a refused open changed the directory")
	}
}
