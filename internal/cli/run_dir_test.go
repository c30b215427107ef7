package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestRunDirs runs the SQLite-style workload (keep/testdata/fsworkload:
// small writes at offsets, fsync, journal, rename, unlink, truncate,
// listing, reopen and read back) through `enarx run` in a kind = "dir"
// preopen of each source, on nil and sandbox with each engine; a host or
// sealed directory written by one Keep is verified by a second.
func TestRunDirs(t *testing.T) {
	wasm := testutil.BuildWasm(t, "../../keep/testdata/fsworkload")
	key := filepath.Join(t.TempDir(), "volume.key")
	if err := os.WriteFile(key, testutil.DeterministicBytes("volume key", 32), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"nil", "sandbox"} {
		for _, eng := range keep.Engines() {
			for _, src := range []string{"memory", "host", "sealed"} {
				t.Run(b+"/"+eng+"/"+src, func(t *testing.T) {
					dir := t.TempDir()
					// Writable by the Keep's user: the sandbox Keep is
					// nobody under a root enarx (docs/sandbox.md).
					os.Chmod(dir, 0o777)
					fields := "source = \"" + src + "\"\n"
					switch src {
					case "memory":
						fields += "size = \"4MiB\"\n"
					case "host":
						fields += "host_path = \"" + dir + "\"\n"
					case "sealed":
						fields += "host_path = \"" + dir + "\"\nkey = \"file:" + key + "\"\n"
					}
					cfg := filepath.Join(t.TempDir(), "Enarx.toml")
					os.WriteFile(cfg, []byte("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
						"[[files]]\nname = \"data\"\nkind = \"dir\"\nguest_path = \"/data\"\n"+fields), 0o644)
					run := func(mode string) (string, string) {
						code, out, errOut := runEnarx(t, nil, "", "run", "--backend", b, "--engine", eng, "--wasmcfgfile", cfg, wasm, "--", "/data", mode)
						if b == "sandbox" && (strings.Contains(errOut, "is not available") || strings.Contains(errOut, "misconfigured")) {
							testutil.NeedHost(t, "sandbox backend unavailable here: %s", errOut)
						}
						if code != 0 || out != "ok\n" {
							t.Fatalf("%s: exit %d, stdout %q, stderr %s", mode, code, out, errOut)
						}
						return out, errOut
					}
					if src == "memory" {
						run("all")
						return
					}
					_, errOut := run("write")
					switch src {
					case "host":
						if !strings.Contains(errOut, "plaintext, untrusted") {
							t.Errorf("no untrusted-plaintext warning for a host directory: %s", errOut)
						}
						if _, err := os.Stat(filepath.Join(dir, "app.db")); err != nil {
							t.Errorf("the host directory lacks the workload's file: %v", err)
						}
					case "sealed":
						if !strings.Contains(errOut, "development only") {
							t.Errorf("a file key is not labelled development only: %s", errOut)
						}
						if _, err := os.Stat(filepath.Join(dir, "app.db")); err == nil {
							t.Errorf("a sealed directory shows the workload's file name")
						}
						if _, err := os.Stat(filepath.Join(dir, "manifest")); err != nil {
							t.Errorf("no sealed manifest: %v", err)
						}
					}
					run("verify")
				})
			}
		}
	}
}

// TestConfigCheckDir: enarx config check shows a dir entry's source.
func TestConfigCheckDir(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "Enarx.toml")
	os.WriteFile(cfg, []byte("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
		"[[files]]\nname = \"db\"\nkind = \"dir\"\nguest_path = \"/data\"\nsource = \"sealed\"\nhost_path = \"/var/lib/app\"\nkey = \"snp\"\nmin_version = 12\nvolume_id = \"00112233445566778899aabbccddeeff\"\n"+
		"[[files]]\nkind = \"dir\"\nguest_path = \"/tmp\"\nsource = \"memory\"\nreadonly = true\n"), 0o644)
	code, out, errOut := runEnarx(t, nil, "", "config", "check", cfg)
	if code != 0 || !strings.Contains(out, `"/data" sealed "/var/lib/app" key="snp" min_version=12 volume_id=00112233445566778899aabbccddeeff`) ||
		!strings.Contains(out, `"/tmp" memory size=67108864 readonly`) || !strings.Contains(out, "FD_NAMES=stdin:stdout:stderr:db:/tmp") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
