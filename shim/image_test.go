package shim

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bundleWith makes a root directory with files (a value starting with
// "->" is a symlink to the rest) and a spec whose root it is.
func bundleWith(t *testing.T, files map[string]string, args ...string) (string, *specs.Spec) {
	t.Helper()
	bundle := t.TempDir()
	root := filepath.Join(bundle, "root")
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return bundle, &specs.Spec{Root: &specs.Root{Path: "root"}, Process: &specs.Process{Args: args, Env: []string{"A=b"}}}
}

const wasmMagic = "\x00asm\x01\x00\x00\x00"

func TestLoadWorkload(t *testing.T) {
	// A host file the image must not reach through links.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte(wasmMagic+"host secret"), 0o600)

	bundle, spec := bundleWith(t, map[string]string{"app/main.wasm": wasmMagic, "Enarx.toml": "args = [\"x\"]\n"}, "app/main.wasm", "one", "two")
	w, err := loadWorkload(bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Enarx.toml goes to the Keep as the image has it; the env beside it.
	if string(w.wasm) != wasmMagic || !slices.Equal(w.args, []string{"one", "two"}) || string(w.config) != "args = [\"x\"]\n" || !slices.Equal(w.env, []string{"A=b"}) {
		t.Errorf("workload %q %q %q %q", w.wasm, w.args, w.config, w.env)
	}
	spec.Process.Env = []string{"A=b", "=nameless"}
	if _, err := loadWorkload(bundle, spec, nil); err == nil || !strings.Contains(err.Error(), "the container's environment: the host's environment entry 1") {
		t.Errorf("a nameless env entry: %v", err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		args  []string
		want  string
	}{
		{"absolute link out of the image", map[string]string{"main.wasm": "->" + secret}, []string{"/main.wasm"}, "no such file"},
		{"dot-dot link out of the image", map[string]string{"main.wasm": "->../../../../../../../../" + secret}, []string{"/main.wasm"}, "no such file"},
		{"dot-dot entrypoint", map[string]string{}, []string{"/../../../../../../../.." + secret}, "no such file"},
		{"magic link", map[string]string{"main.wasm": "->/proc/self/exe"}, []string{"/main.wasm"}, ""},
		{"not wasm", map[string]string{"main.wasm": "#!/bin/sh"}, []string{"/main.wasm"}, "is not a WebAssembly module"},
		{"directory", map[string]string{"main.wasm/x": wasmMagic}, []string{"/main.wasm"}, "not a regular file"},
		{"no entrypoint", map[string]string{"main.wasm": wasmMagic}, nil, "no entrypoint"},
		{"bad Enarx.toml", map[string]string{"main.wasm": wasmMagic, "Enarx.toml": "[[files]]\nkind = \"udp\"\n"}, []string{"/main.wasm"}, "Enarx.toml"},
		{"Enarx.toml link out", map[string]string{"main.wasm": wasmMagic, "Enarx.toml": "->" + secret}, []string{"/main.wasm"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, spec := bundleWith(t, tc.files, tc.args...)
			w, err := loadWorkload(bundle, spec, nil)
			if tc.name == "Enarx.toml link out" {
				// Resolved inside the image: no such file there, so no config.
				if err != nil || w.config != nil {
					t.Fatalf("got %v, config %q", err, w.config)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %q", w.wasm)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
	bundle, spec = bundleWith(t, map[string]string{"main.wasm": wasmMagic}, "/main.wasm")
	spec.Process.Terminal = true
	if _, err := loadWorkload(bundle, spec, nil); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("terminal: %v", err)
	}
}

func TestNetOf(t *testing.T) {
	ns := func(n ...specs.LinuxNamespace) *specs.Spec { return &specs.Spec{Linux: &specs.Linux{Namespaces: n}} }
	for _, tc := range []struct {
		spec *specs.Spec
		want netSetup
	}{
		{&specs.Spec{}, netSetup{}},
		{ns(specs.LinuxNamespace{Type: specs.PIDNamespace}), netSetup{}},
		{ns(specs.LinuxNamespace{Type: specs.NetworkNamespace}), netSetup{newNS: true}},
		{ns(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}), netSetup{path: "/var/run/netns/cni-1"}},
	} {
		if got := netOf(tc.spec); got != tc.want {
			t.Errorf("netOf(%+v) = %+v, want %+v", tc.spec.Linux, got, tc.want)
		}
	}
}

func TestDecodeOptions(t *testing.T) {
	o, err := DecodeOptions([]byte("backend = \"sandbox\"\nengine = \"wazero\"\nmemory_mib = 512\nlog_level = \"info\"\nrequire_isolation = true\nallow_host_paths = [\"/a\", \"/b\"]\n"))
	if err != nil || o.Backend != "sandbox" || o.Engine != "wazero" || o.MemoryMiB != 512 || !o.RequireIsolation || !slices.Equal(o.AllowHostPaths, []string{"/a", "/b"}) {
		t.Fatalf("%+v, %v", o, err)
	}
	if o, err := DecodeOptions(nil); err != nil || !reflect.DeepEqual(*o, Options{}) {
		t.Fatalf("empty: %+v, %v", o, err)
	}
	for _, bad := range []string{"backnd = \"x\"", "engine = \"v8\"", "memory_mib = 5000", "log_level = \"loud\"", "backend = 1", strings.Repeat("#", maxOptions+1)} {
		if _, err := DecodeOptions([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
	o, err = parseOptions(nil)
	if err != nil || o.CacheDir != DefaultCacheDir {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}
