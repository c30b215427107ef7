package keep_test

import (
	"bytes"
	"context"
	"log/slog"
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
	testutil.SkipWazeroUnderRace(t, onWazero(t))
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

// TestDirSealed runs the workload on a sealed directory keyed by a host
// key file: a second Keep reads it back, the host directory holds no
// plaintext, a flipped byte is an I/O error to the workload (logged once
// per kind, never returned as data), and a wrong key or a pinned
// min_version above the volume's refuses the volume.
func TestDirSealed(t *testing.T) { eachEngine(t, testDirSealed) }

func testDirSealed(t *testing.T) {
	wasm := fsWorkload(t)
	host := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "volume.key")
	key := bytes.Repeat([]byte{7}, 32)
	os.WriteFile(keyFile, key, 0o600)
	spec := "file:" + keyFile
	cfg := func(extra string) string {
		return dirConfig("source = \"sealed\"\nhost_path = \"" + host + "\"\nkey = \"" + spec + "\"\n" + extra)
	}
	opts := func(logs *bytes.Buffer, k []byte) keep.Options {
		return keep.Options{Args: []string{"/data"}, VolumeKeys: map[string][]byte{spec: k}, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	}
	var logs bytes.Buffer
	r := runOpts(t, keep.Workload{Wasm: wasm}, cfg(""), nil, withArgs(opts(&logs, key), "write"))
	if r.err != nil || r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("write: code %d err %v stdout %q logs %s", r.code, r.err, r.stdout, logs.String())
	}
	if !strings.Contains(logs.String(), "development only") {
		t.Errorf("a file key is not labelled development only in the log:\n%s", logs.String())
	}
	// The host sees ciphertext only: no name, no page.
	var objects []string
	filepath.WalkDir(host, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		objects = append(objects, p)
		b, _ := os.ReadFile(p)
		for _, s := range []string{"page 0 gen", "app.db", "blob-0", "version = 2", "settings"} {
			if bytes.Contains(b, []byte(s)) || strings.Contains(p, s) {
				t.Errorf("the host directory shows %q in %s", s, p)
			}
		}
		return nil
	})
	logs.Reset()
	if r := runOpts(t, keep.Workload{Wasm: wasm}, cfg("readonly = true\nmin_version = 2\n"), nil, withArgs(opts(&logs, key), "verify")); r.err != nil || r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("verify in a second Keep: code %d err %v stdout %q logs %s", r.code, r.err, r.stdout, logs.String())
	}
	logs.Reset()
	if r := runOpts(t, keep.Workload{Wasm: wasm}, cfg(""), nil, withArgs(opts(&logs, bytes.Repeat([]byte{8}, 32)), "verify")); r.code != 1 || r.err == nil ||
		!strings.Contains(r.err.Error(), "sealed volume integrity check failed") {
		t.Fatalf("another key: code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
	if r := runOpts(t, keep.Workload{Wasm: wasm}, cfg("min_version = 1000\n"), nil, withArgs(opts(&logs, key), "verify")); r.code != 1 || r.err == nil ||
		!strings.Contains(r.err.Error(), "min_version") {
		t.Fatalf("min_version above the volume's: code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
	// Flip a byte in the middle of every file object (not the manifest):
	// the database's pages fail authentication.
	flipped := 0
	for _, p := range objects {
		if filepath.Base(p) == "manifest" {
			continue
		}
		b, _ := os.ReadFile(p)
		if len(b) > 100 {
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o600)
			flipped++
		}
	}
	if flipped == 0 {
		t.Fatalf("no object to tamper with among %q", objects)
	}
	logs.Reset()
	r = runOpts(t, keep.Workload{Wasm: wasm}, cfg(""), nil, withArgs(opts(&logs, key), "verify"))
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "i/o error") {
		t.Fatalf("tampered volume: code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
	if n := strings.Count(logs.String(), "integrity failure"); n < 1 || n > flipped {
		t.Errorf("%d integrity failures logged for %d tampered objects (want each kind once):\n%s", n, flipped, logs.String())
	}
}

// withArgs returns o with args appended.
func withArgs(o keep.Options, args ...string) keep.Options {
	o.Args = append(append([]string(nil), o.Args...), args...)
	return o
}
