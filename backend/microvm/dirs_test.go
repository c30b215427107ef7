package microvm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
)

// dirCfg is an Enarx.toml with stdio and one dir entry at /data.
func dirCfg(fields string) string {
	return "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n" +
		"[[files]]\nname = \"data\"\nkind = \"dir\"\nguest_path = \"/data\"\n" + fields
}

// TestDirsOverChannel runs the SQLite-style workload (small writes at
// offsets, fsync, journal, rename, unlink, truncate, listing, reopen and
// read back) in host and sealed directories of a Keep reached through the
// channel (the guest side in this process, over a socketpair): the host
// serves each directory on a stream (keep.ServeDir, hostfs beneath it) and
// the Keep works on it through keep/internal/vfs/remote. The data a channel
// Keep writes is read back by a nil Keep (and the other way round), a
// read-only entry refuses the write, and the sealed directory holds no
// plaintext.
func TestDirsOverChannel(t *testing.T) {
	wasm := build(t, "fsworkload")
	ch := inProcess{}
	run := func(t *testing.T, b backend.Backend, cfg, op string) {
		t.Helper()
		r := runOn(t, b, wasm, cfg, nil, "/data", op)
		if r.code != 0 || r.err != "" || r.stdout != "ok\n" {
			t.Fatalf("%s %s: code %d err %q stdout %q stderr %q", b.Name(), op, r.code, r.err, r.stdout, r.stderr)
		}
	}
	t.Run("host", func(t *testing.T) {
		dir := t.TempDir()
		cfg := dirCfg("source = \"host\"\nhost_path = \"" + dir + "\"\n")
		run(t, ch, cfg, "all")
		db, err := os.ReadFile(filepath.Join(dir, "app.db"))
		if err != nil || !bytes.HasPrefix(db, []byte("page 0 gen 1\n")) {
			t.Fatalf("the host directory holds %d bytes (%v); want the workload's plaintext", len(db), err)
		}
		run(t, backend.Nil{}, dirCfg("source = \"host\"\nhost_path = \""+dir+"\"\nreadonly = true\n"), "verify")
		fresh := t.TempDir()
		run(t, backend.Nil{}, dirCfg("source = \"host\"\nhost_path = \""+fresh+"\"\n"), "write")
		run(t, ch, dirCfg("source = \"host\"\nhost_path = \""+fresh+"\"\nreadonly = true\n"), "verify")
	})
	t.Run("host read-only", func(t *testing.T) {
		dir := t.TempDir()
		r := runOn(t, ch, wasm, dirCfg("source = \"host\"\nhost_path = \""+dir+"\"\nreadonly = true\n"), nil, "/data", "write")
		if r.code != 1 || !strings.Contains(strings.ToLower(r.stdout), "read-only file system") {
			t.Fatalf("code %d err %q stdout %q", r.code, r.err, r.stdout)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("a read-only directory was written: %v", ents)
		}
	})
	t.Run("sealed", func(t *testing.T) {
		dir, keyDir := t.TempDir(), t.TempDir()
		key := filepath.Join(keyDir, "key")
		if err := os.WriteFile(key, bytes.Repeat([]byte{0x5a}, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := dirCfg("source = \"sealed\"\nhost_path = \"" + dir + "\"\nkey = \"file:" + key + "\"\n")
		run(t, ch, cfg, "write")
		run(t, backend.Nil{}, cfg, "verify")
		run(t, ch, cfg, "verify")
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				if bytes.Contains(b, []byte("page 0 gen")) || strings.Contains(p, "app.db") {
					t.Errorf("%s holds plaintext data or names", p)
				}
			}
			return nil
		})
	})
}

// TestVMDirs: a real microVM Keep (TCG) works in a host directory and in
// a sealed one through `enarx run --backend kvm`: the guest has no host
// file system, so every call crosses the channel. Two boots: the
// workload's write and read back (all) on each source.
func TestVMDirs(t *testing.T) {
	env := vmEnv(t)
	module := testutil.BuildWasm(t, "../../keep/testdata/fsworkload")
	hostDir, sealedDir := t.TempDir(), t.TempDir()
	key := writeFile(t, "key", bytes.Repeat([]byte{0xa5}, 32))
	for _, tc := range []struct{ name, fields string }{
		{"host", "source = \"host\"\nhost_path = \"" + hostDir + "\"\n"},
		{"sealed", "source = \"sealed\"\nhost_path = \"" + sealedDir + "\"\nkey = \"file:" + key + "\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, "Enarx.toml", []byte(dirCfg(tc.fields)))
			r := enarxRun(t, env, nil, "run", "--backend", "kvm", "--wasmcfgfile", cfg, module, "--", "/data", "all")
			if r.code != 0 || r.stdout != "ok\n" {
				t.Fatalf("code %d stdout %q stderr %.2000q", r.code, r.stdout, r.stderr)
			}
		})
	}
	if db, err := os.ReadFile(filepath.Join(hostDir, "app.db")); err != nil || !bytes.HasPrefix(db, []byte("page 0 gen 1\n")) {
		t.Errorf("host directory: %d bytes of app.db (%v)", len(db), err)
	}
	if ents, _ := os.ReadDir(sealedDir); len(ents) == 0 {
		t.Errorf("the sealed directory is empty")
	}
}
