package keep_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

const dirStdio = "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"

// dirConfig is an Enarx.toml with stdio and one dir entry at /data.
func dirConfig(fields string) string {
	return dirStdio + "[[files]]\nname = \"data\"\nkind = \"dir\"\nguest_path = \"/data\"\n" + fields
}

func fsWorkload(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.BuildWasm(t, "testdata/fsworkload"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDirWorkload runs the SQLite-style workload (small writes at
// offsets, fsync, journal, rename, unlink, truncate, listing, reopen and
// read back) in a memory directory and in a host directory, where a
// second Keep then finds the data, in plaintext, and a read-only preopen
// of it reads but does not write.
func TestDirWorkload(t *testing.T) { eachEngine(t, testDirWorkload) }

func testDirWorkload(t *testing.T) {
	wasm := fsWorkload(t)
	t.Run("memory", func(t *testing.T) {
		r := run(t, wasm, dirConfig("source = \"memory\"\nsize = \"2MiB\"\n"), nil, "/data", "all")
		if r.err != nil || r.code != 0 || r.stdout != "ok\n" {
			t.Fatalf("code %d err %v stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
		}
	})
	t.Run("memory too small", func(t *testing.T) {
		r := run(t, wasm, dirConfig("source = \"memory\"\nsize = \"64KiB\"\n"), nil, "/data", "all")
		if r.err != nil || r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "no space left on device") {
			t.Fatalf("code %d err %v stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
		}
	})
	t.Run("host", func(t *testing.T) {
		host := t.TempDir()
		cfg := dirConfig("source = \"host\"\nhost_path = \"" + host + "\"\n")
		r := run(t, wasm, cfg, nil, "/data", "write")
		if r.err != nil || r.code != 0 || r.stdout != "ok\n" {
			t.Fatalf("write: code %d err %v stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
		}
		db, err := os.ReadFile(filepath.Join(host, "app.db"))
		if err != nil || !bytes.HasPrefix(db, []byte("page 0 gen 1\n")) {
			t.Fatalf("the host directory holds %d bytes starting %q (%v); want the workload's plaintext", len(db), db[:min(len(db), 16)], err)
		}
		ro := dirConfig("source = \"host\"\nhost_path = \"" + host + "\"\nreadonly = true\n")
		if r := run(t, wasm, ro, nil, "/data", "verify"); r.err != nil || r.code != 0 || r.stdout != "ok\n" {
			t.Fatalf("verify in a second Keep, read-only: code %d err %v stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
		}
		fresh := t.TempDir()
		ro = dirConfig("source = \"host\"\nhost_path = \"" + fresh + "\"\nreadonly = true\n")
		if r := run(t, wasm, ro, nil, "/data", "write"); r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "read-only file system") {
			t.Fatalf("write to a read-only preopen: code %d err %v stdout %q", r.code, r.err, r.stdout)
		}
		if ents, _ := os.ReadDir(fresh); len(ents) != 0 {
			t.Fatalf("a read-only preopen was written: %v", ents)
		}
	})
}

// TestDirHostPassesWrongThing: the host is untrusted; a host or sealed
// dir entry must get a directory, a memory one nothing.
func TestDirHostPassesWrongThing(t *testing.T) {
	d := t.TempDir()
	file, err := os.Create(filepath.Join(d, "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	dirf, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer dirf.Close()
	wasm := fsWorkload(t)
	host := "[[files]]\nkind = \"dir\"\nguest_path = \"/\"\nsource = \"host\"\nhost_path = \"" + d + "\"\n"
	mem := "[[files]]\nkind = \"dir\"\nguest_path = \"/\"\nsource = \"memory\"\n"
	for _, c := range []struct {
		name, cfg string
		f         *os.File
		want      string
	}{
		{"file for host", host, file, `fd 0 (dir "/"): the host passed something other than a directory`},
		{"nothing for host", host, nil, `fd 0 (dir "/"): the host passed no directory`},
		{"dir for memory", mem, dirf, `fd 0 (dir "/"): the host passed a file for a memory directory`},
	} {
		code, err := keep.Run(context.Background(), keep.Workload{Wasm: wasm, Config: []byte(c.cfg)},
			keep.Options{Files: []*os.File{c.f}, CacheDir: cacheDir})
		if code != 1 || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: code %d, %v; want %q", c.name, code, err, c.want)
		}
	}
	// Run does not close what the host passed.
	if _, err := dirf.Stat(); err != nil {
		t.Fatalf("the host's directory was closed: %v", err)
	}
}
