package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
)

const (
	// maxModule bounds the module read from an image.
	maxModule = 512 << 20
	// maxConfig bounds Enarx.toml, as package config does.
	maxConfig = 1 << 20
	// maxSpec bounds the bundle's config.json.
	maxSpec = 16 << 20
	// configPath is where an image keeps its optional Enarx.toml.
	configPath = "/Enarx.toml"
)

// workload is what a task runs: read from the image, checked, and ready to
// be sent to a keep host.
type workload struct {
	// module is the image's module, opened read-only and checked (a
	// regular file of at most maxModule bytes that starts with \0asm).
	// The shim never reads it whole: the keep host does, in the task's
	// cgroup (launchMsg.module), so a large module counts against the
	// pod's memory limit and not the shim's, which has none.
	module *os.File
	// bundle is a Drawbridge package's bundle (loadPackage), which the Keep
	// verifies; wasm is then nil and config the host's unverified copy.
	bundle []byte
	config []byte // the image's Enarx.toml as it is, nil for the default
	args   []string
	// env is the OCI spec's env ("NAME=value": the image's ENV, then the
	// pod's or ctr's), which the Keep adds after Enarx.toml's [env]
	// (keep.Options.Env).
	env []string
	net netSetup
}

// close closes the module, if the workload has one.
func (w *workload) close() {
	if w.module != nil {
		w.module.Close()
	}
}

// netSetup is the network namespace the keep host starts in, from the OCI
// spec's namespaces: a path to join (a Kubernetes pod's), a new namespace
// (a "network" entry without a path, as ctr run makes), or the shim's own
// (no "network" entry: host networking).
type netSetup struct {
	path  string
	newNS bool
}

// readSpec reads the OCI runtime spec of a bundle.
func readSpec(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the OCI spec: %w", err)
	}
	defer f.Close()
	var s specs.Spec
	if err := json.NewDecoder(io.LimitReader(f, maxSpec)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding the OCI spec %s: %w", f.Name(), err)
	}
	return &s, nil
}

// loadWorkload reads the module and Enarx.toml of a task from its image:
// the rootfs mounts containerd passes (mounted at <bundle>/rootfs for the
// time of reading only), or the spec's root directory when there are none.
func loadWorkload(bundle string, spec *specs.Spec, rootfs []*types.Mount) (_ *workload, err error) {
	if spec.Process == nil || len(spec.Process.Args) == 0 || spec.Process.Args[0] == "" {
		return nil, errors.New("the container has no entrypoint: the image's ENTRYPOINT (or the command) must name its wasm module, e.g. ENTRYPOINT [\"/main.wasm\"]")
	}
	if spec.Process.Terminal {
		return nil, errors.New("a Keep has no terminal: run the container without a TTY (no -t / tty: true)")
	}
	root := filepath.Join(bundle, "rootfs")
	if spec.Root != nil && spec.Root.Path != "" {
		root = spec.Root.Path
		if !filepath.IsAbs(root) {
			root = filepath.Join(bundle, root)
		}
	}
	if len(rootfs) > 0 {
		root = filepath.Join(bundle, "rootfs")
		if err := os.MkdirAll(root, 0o711); err != nil {
			return nil, fmt.Errorf("making the rootfs mount point: %w", err)
		}
		mounts := make([]mount.Mount, len(rootfs))
		for i, m := range rootfs {
			mounts[i] = mount.Mount{Type: m.Type, Source: m.Source, Options: m.Options}
		}
		if err := mount.All(mounts, root); err != nil {
			return nil, fmt.Errorf("mounting the image's root: %w", err)
		}
		defer func() {
			if uerr := mount.UnmountAll(root, unix.MNT_DETACH); uerr != nil && err == nil {
				err = fmt.Errorf("unmounting the image's root: %w", uerr)
			}
		}()
	}
	w := &workload{args: spec.Process.Args[1:], net: netOf(spec)}
	entry := spec.Process.Args[0]
	if !path.IsAbs(entry) {
		entry = path.Join("/", spec.Process.Cwd, entry)
	}
	if w.module, err = openInRoot(root, entry, maxModule); err != nil {
		return nil, fmt.Errorf("reading the module %s named by the entrypoint: %w", entry, err)
	}
	defer func() {
		if err != nil {
			w.module.Close()
		}
	}()
	magic := make([]byte, 4)
	if _, err := w.module.ReadAt(magic, 0); (err != nil && err != io.EOF) || string(magic) != "\x00asm" {
		return nil, fmt.Errorf("%s, the image's entrypoint, is not a WebAssembly module (it does not start with \\0asm): the entrypoint must name the .wasm module", entry)
	}
	raw, err := readInRoot(root, configPath, maxConfig)
	switch {
	case errors.Is(err, unix.ENOENT):
		raw = nil
	case err != nil:
		return nil, fmt.Errorf("reading the image's %s: %w", configPath, err)
	}
	if raw != nil {
		if _, err = config.Parse("Enarx.toml", raw); err != nil {
			return nil, fmt.Errorf("the image's Enarx.toml: %w", err)
		}
	}
	w.config = raw
	if w.env, err = containerEnv(spec); err != nil {
		return nil, err
	}
	return w, nil
}

// podSandbox reports whether the spec is a Kubernetes pod's sandbox
// container (CRI's annotation): its image is the pause image, a Linux
// program, not a wasm module. The shim runs its own pause instead (a keep
// host with launchMsg.Pause), in the pod's network namespace, so that the
// pod's Keeps can join it (CRI gives them /proc/<sandbox pid>/ns/net).
func podSandbox(spec *specs.Spec) bool {
	return spec.Annotations[criContainerType] == "sandbox"
}

// criContainerType is the annotation containerd's CRI sets on every
// container it creates: "sandbox" or "container".
const criContainerType = "io.kubernetes.cri.container-type"

// criSandboxNamespace is the annotation containerd's CRI sets on every
// container of a pod: the pod's Kubernetes namespace.
const criSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"

// noNamespaceScope is the cache scope of the containers that have no
// Kubernetes namespace (ctr run, nerdctl: started by whoever may use
// containerd's socket, root). A namespace's name is a DNS label, which has
// no space or parenthesis: no pod's Keep shares its cache.
const noNamespaceScope = "(no Kubernetes namespace)"

// cacheScope is the keep.Options.CacheScope of the spec's Keep: its pod's
// Kubernetes namespace, so that the Keeps of one namespace share their
// compiled code and those of different namespaces (tenants) never do; for
// a container without one, noNamespaceScope. A namespace annotation that
// is not a DNS label (not CRI's) gets a scope of its own, which no
// namespace or noNamespaceScope has.
func cacheScope(spec *specs.Spec) string {
	ns, ok := spec.Annotations[criSandboxNamespace]
	switch {
	case !ok:
		return noNamespaceScope
	case dnsLabel(ns):
		return ns
	default:
		return "(annotation) " + ns
	}
}

// dnsLabel reports whether s is an RFC 1123 label, as Kubernetes names
// its namespaces: 1 to 63 lower-case letters, digits and '-', starting
// and ending with a letter or digit.
func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// netOf is the network namespace the spec asks for.
func netOf(spec *specs.Spec) netSetup {
	if spec.Linux == nil {
		return netSetup{}
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return netSetup{path: ns.Path, newNS: ns.Path == ""}
		}
	}
	return netSetup{}
}

// readInRoot reads the regular file name, resolved inside root as if root
// were "/" (symlinks and ".." cannot leave it: openat2 RESOLVE_IN_ROOT),
// refusing files above max bytes. The image is untrusted: a link to a
// host file must not be followed out of it, and nothing but a regular
// file is opened for reading: an image layer may carry device nodes, and
// opening one (as root, outside any device cgroup) can act on the node (a
// watchdog starts on open). So the file is resolved with O_PATH, checked,
// and only then reopened, through its descriptor, for reading.
func readInRoot(root, name string, max int64) ([]byte, error) {
	f, err := openInRoot(root, name, max)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		return nil, fmt.Errorf("%s is more than the %d bytes allowed", name, max)
	}
	return b, err
}

// openInRoot opens the regular file name beneath root read-only, as the
// image's root resolves it, once it is known to be at most max bytes.
func openInRoot(root, name string, max int64) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	pfd, err := unix.Openat2(int(dir.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Size > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", name, st.Size, max)
	}
	// The O_PATH descriptor pins the checked inode: reopening it cannot
	// reach another file.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("reopening %s for reading: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// checkHostPaths refuses a workload whose Enarx.toml (the image's or the
// package's) names a host directory or volume key file that the runtime
// options' allow_host_paths do not: whoever may create a pod chooses the
// Enarx.toml, and the keep host opens what it names as root in the node's
// mount namespace.
func checkHostPaths(w *workload, o *Options) error {
	if w.config == nil {
		return nil
	}
	cfg, err := config.Parse("Enarx.toml", w.config)
	if err != nil {
		return fmt.Errorf("the workload's Enarx.toml: %w", err)
	}
	if p := hostio.NotAllowed(cfg, o.AllowHostPaths); p != nil {
		return fmt.Errorf("the workload's Enarx.toml names the host %s %q (files[%d], dir %q, source = %q), which this node does not allow: "+
			"the node's operator allows a host path by naming it in allow_host_paths of the RuntimeClass's runtime options", p.What, p.Path, p.Index, p.Name, p.Source)
	}
	return nil
}
