package shim

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// moduleOf reads the module the shim opened for w.
func moduleOf(t *testing.T, w *workload) []byte {
	t.Helper()
	st, err := w.module.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := w.module.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLaunchModuleByDescriptor: the shim hands the image's module to the
// keep host as a descriptor, which the keep host reads (in the task's
// cgroup); the launch message the shim encodes holds none of its bytes.
// The shim read the whole module and encoded it into the message: two
// copies of up to 512 MiB in the shim, which no pod memory limit covers.
func TestLaunchModuleByDescriptor(t *testing.T) {
	module := append([]byte(wasmMagic), bytes.Repeat([]byte{0x5a}, 8<<20)...)
	bundle, spec := bundleWith(t, map[string]string{"main.wasm": string(module)}, "/main.wasm")
	w, err := loadWorkload(bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := keepLaunch(w, spec, &Options{}, 0)
	defer m.close()
	var msg bytes.Buffer
	if err := writeLaunch(&msg, m); err != nil {
		t.Fatal(err)
	}
	if msg.Len() > 64<<10 || bytes.Contains(msg.Bytes(), module[:64]) {
		t.Fatalf("the launch message is %d bytes and carries the module", msg.Len())
	}
	got, err := readLaunch(&msg)
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasModule || got.Wasm != nil {
		t.Fatalf("HasModule %v, Wasm %d bytes: want the module on its descriptor only", got.HasModule, len(got.Wasm))
	}
	// What the keep host gets as moduleFD: another descriptor of the file.
	fd, err := unix.Dup(int(m.module.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := readModule(os.NewFile(uintptr(fd), "module"))
	if err != nil || !bytes.Equal(wasm, module) {
		t.Fatalf("keep host read %d bytes, %v; want the %d-byte module", len(wasm), err, len(module))
	}
	if _, err := readModule(nil); err == nil {
		t.Error("a keep host without the module's descriptor went on")
	}
}

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
	if got := moduleOf(t, w); string(got) != wasmMagic || !slices.Equal(w.args, []string{"one", "two"}) || string(w.config) != "args = [\"x\"]\n" || !slices.Equal(w.env, []string{"A=b"}) {
		t.Errorf("workload %q %q %q %q", got, w.args, w.config, w.env)
	}
	w.close()
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
				t.Fatalf("accepted: %q", moduleOf(t, w))
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
