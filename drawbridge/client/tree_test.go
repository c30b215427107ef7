package client

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildTreeNested(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"main.wasm":          "wasm",
		"Enarx.toml":         "x = 1\n",
		"assets/a.txt":       "a",
		"assets/deep/b.json": "{}",
	})
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	tree, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, n := range tree.Nodes {
		paths = append(paths, "/"+n.Path.String())
	}
	want := "/ /Enarx.toml /assets /assets/a.txt /assets/deep /assets/deep/b.json /empty /main.wasm"
	if strings.Join(paths, " ") != want {
		t.Fatalf("upload order %v, want %s", paths, want)
	}
	// Every directory's body lists exactly its children's entries, and its
	// own entry hashes that body: the Merkle chain is consistent.
	byPath := map[string]Node{}
	for _, n := range tree.Nodes {
		byPath[n.Path.String()] = n
	}
	for _, n := range tree.Nodes {
		if n.Body == nil {
			b, _ := os.ReadFile(n.File)
			sum, l := types.Compute(b)
			if !sum.Equal(n.Entry.Digest) || l != n.Entry.Length {
				t.Fatalf("%s: file entry does not hash the file", n.Path)
			}
			continue
		}
		sum, l := types.Compute(n.Body)
		if !sum.Equal(n.Entry.Digest) || l != n.Entry.Length || n.Entry.Type != types.DirectoryType {
			t.Fatalf("%s: directory entry does not hash its body", n.Path)
		}
		d, err := types.ParseDirectory(n.Body)
		if err != nil {
			t.Fatal(err)
		}
		for name, e := range d {
			c := byPath[n.Path.Child(name).String()]
			if !c.Entry.Meta.Equal(e.Meta) {
				t.Fatalf("%s: entry %s differs from the child's", n.Path, name)
			}
		}
	}
	if byPath["main.wasm"].Entry.Type != types.WasmType || byPath["Enarx.toml"].Entry.Type != types.TOMLType ||
		byPath["assets/a.txt"].Entry.Type != types.OctetStreamType {
		t.Fatal("wrong media types")
	}
	if !tree.Root().Meta.Equal(tree.Nodes[0].Entry.Meta) {
		t.Fatal("root")
	}
}

func TestBuildTreeSingleFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.wasm": "wasm", "other.wasm": "x"})
	tree, err := BuildTree(filepath.Join(dir, "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Nodes) != 1 || tree.Root().Type != types.WasmType || tree.Root().Length != 4 {
		t.Fatalf("%+v", tree.Nodes)
	}
	if _, err := BuildTree(filepath.Join(dir, "other.wasm")); err == nil || !strings.Contains(err.Error(), "Invalid file name") && !strings.Contains(err.Error(), "invalid file name") {
		t.Fatalf("other.wasm: %v", err)
	}
}

func TestBuildTreeRejects(t *testing.T) {
	cases := map[string]func(dir string){
		"no main.wasm": func(dir string) { writeFiles(t, dir, map[string]string{"Enarx.toml": ""}) },
		"bad name": func(dir string) {
			writeFiles(t, dir, map[string]string{"main.wasm": "", "bad name.txt": ""})
		},
		"dir symlink": func(dir string) {
			writeFiles(t, dir, map[string]string{"main.wasm": "", "d/x": ""})
			os.Symlink(filepath.Join(dir, "d"), filepath.Join(dir, "loop"))
		},
		"fifo-like": func(dir string) {
			writeFiles(t, dir, map[string]string{"main.wasm": ""})
			os.Symlink("/dev/null", filepath.Join(dir, "null"))
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			setup(dir)
			if tree, err := BuildTree(dir); err == nil {
				t.Fatalf("accepted: %d nodes", len(tree.Nodes))
			}
		})
	}
}

// TestBuildTreeRefusesSymlinks: a symbolic link in a package directory,
// to a file outside it (a private key, say) or inside it, is refused with
// an error that names it and says what to do; upstream follows it and
// publishes the file it points to. The package path itself may be one.
func TestBuildTreeRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"id_ed25519": "PRIVATE KEY", "real.wasm": "w"})
	for name, target := range map[string]string{
		"id_ed25519": filepath.Join(dir, "id_ed25519"), // a file outside the package
		"main.wasm":  filepath.Join(dir, "real.wasm"),  // the module itself
		"relative":   "main.wasm",                      // a file inside it
	} {
		t.Run(name, func(t *testing.T) {
			pkg := t.TempDir()
			if name != "main.wasm" {
				writeFiles(t, pkg, map[string]string{"main.wasm": "w"})
			}
			link := filepath.Join(pkg, name)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			tree, err := BuildTree(pkg)
			if err == nil {
				t.Fatalf("accepted: %d nodes", len(tree.Nodes))
			}
			if msg := err.Error(); !strings.Contains(msg, link) || !strings.Contains(msg, "symbolic link") || !strings.Contains(msg, "copy of the file") {
				t.Fatalf("error does not name the link and the remedy: %v", err)
			}
		})
	}
	// The path the user gives may be a link (to a main.wasm or a package).
	pkg := filepath.Join(dir, "pkg")
	writeFiles(t, pkg, map[string]string{"main.wasm": "w"})
	for _, l := range []struct{ link, target string }{{"main.wasm", filepath.Join(pkg, "main.wasm")}, {"pkglink", pkg}} {
		p := filepath.Join(t.TempDir(), l.link)
		os.Symlink(l.target, p)
		if _, err := BuildTree(p); err != nil {
			t.Errorf("%s → %s: %v", l.link, l.target, err)
		}
	}
}

func TestHashFileParallelMatches(t *testing.T) {
	for _, size := range []int{0, 100, parallelHashSize + 12345} {
		data := bytes.Repeat([]byte{0x5a, 0x01, 0xff}, size/3+1)[:size]
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, data, 0o644)
		got, _, err := hashFile(nil, p, "", types.WasmType, false)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := types.FileEntry(bytes.NewReader(data), types.WasmType)
		if !got.Meta.Equal(want.Meta) || len(got.Digest) != 4 {
			t.Fatalf("size %d: %v != %v", size, got.Meta, want.Meta)
		}
	}
}
