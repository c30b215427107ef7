package shim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/shim"
)

// These tests run the shim under a real containerd (Debian's package,
// installed by scripts/install-deps.sh): each test starts a daemon of its
// own (private root, state directory, socket and config, no CRI), imports
// an OCI image built here with `ctr image import` and runs it with
// `ctr run --runtime io.containerd.enarx.v1`, the shim binary built from
// this repository found on PATH, as containerd looks for it.

const (
	ns       = "enarx-test"
	platform = "wasi/wasm"
	// port is where the Enarx.toml image's workload listens, inside its
	// task's network namespace (every task has its own, so two can).
	port = 18080
)

// configImage is the Enarx.toml of the image that has one.
var configImage = fmt.Sprintf(`args = ["--from-config"]

[env]
FROM_CONFIG = "yes"
GREETING = "from Enarx.toml"

[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "ingest"
kind = "listen"
prot = "tcp"
addr = "127.0.0.1"
port = %d
`, port)

var (
	shimOnce sync.Once
	shimDir  string
	shimErr  error
)

// shimOnPath builds cmd/containerd-shim-enarx-v1 once per test binary
// (the default build: pure Go, wazero) into a directory and returns it.
func shimOnPath(t testing.TB) string {
	t.Helper()
	shimOnce.Do(func() {
		shimDir, shimErr = os.MkdirTemp("", "enarx-shim-bin-")
		if shimErr != nil {
			return
		}
		cmd := exec.Command(goBin(), "build", "-o", shimDir, "../cmd/containerd-shim-enarx-v1")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shimErr = fmt.Errorf("building the shim: %v\n%s", err, out)
		}
	})
	if shimErr != nil {
		t.Fatal(shimErr)
	}
	return shimDir
}

func goBin() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// hostNetNS names the test process's network namespace as it was at the
// start: a thread that netnsFile moved may have been the main thread, which
// Go wedges instead of ending, and /proc/self/ns/net follows that thread.
var hostNetNS string

func TestMain(m *testing.M) {
	if shim.IsKeepHost() {
		// The test binary as the keep host of a task that a test serves
		// itself (startKeepHost runs os.Executable()).
		os.Exit(shim.KeepHostMain())
	}
	if f, err := os.Open("/proc/thread-self/ns/net"); err == nil {
		hostNetNS = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		defer f.Close()
	}
	code := m.Run()
	if shimDir != "" {
		os.RemoveAll(shimDir)
	}
	os.Exit(code)
}

// daemon is a private containerd.
type daemon struct {
	t       testing.TB
	dir     string
	sock    string
	path    string // PATH with the shim first
	cmd     *exec.Cmd
	shimBin string
	// sockets are the shim sockets that existed before the daemon.
	sockets map[string]bool
	// namespace is ctr's containerd namespace (ns; CRI's is k8s.io).
	namespace string
	// env is added to containerd's environment, which its shims inherit.
	env []string
}

// shimSockets lists the shim library's socket directory.
func shimSockets() map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir("/run/containerd/s")
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m
}

// startContainerd starts a containerd of the test's own and stops it (and
// checks that nothing of the shim's is left) at the end of the test.
func startContainerd(t testing.TB) *daemon {
	t.Helper()
	return startContainerdWith(t, "")
}

// startContainerdWith starts a containerd whose config has extra appended;
// with extra, containerd's CRI plugin is enabled (it configures it).
func startContainerdWith(t testing.TB, extra string, env ...string) *daemon {
	t.Helper()
	for _, bin := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			testutil.NeedHost(t, "%s is not installed (Debian's containerd package; scripts/install-deps.sh installs it)", bin)
		}
	}
	if os.Geteuid() != 0 {
		testutil.NeedHost(t, "containerd runs as root here; the tests are not root")
	}
	bin := shimOnPath(t)
	dir, err := os.MkdirTemp("", "ctd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "c.sock"), shimBin: filepath.Join(bin, "containerd-shim-enarx-v1"),
		path: bin + string(os.PathListSeparator) + os.Getenv("PATH"), sockets: shimSockets(), namespace: ns, env: env}
	disabled := `"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"`
	if extra == "" {
		disabled = `"io.containerd.grpc.v1.cri", ` + disabled
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, d.sock, filepath.Join(dir, "opt")) + extra
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	d.launch()
	return d
}

// launch starts containerd and waits until it listens.
func (d *daemon) launch() {
	t := d.t
	logf, err := os.OpenFile(filepath.Join(d.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // containerd has its own copy
	d.cmd = exec.Command("containerd", "--config", filepath.Join(d.dir, "config.toml"), "--log-level", "debug")
	d.cmd.Env = append(append(os.Environ(), "PATH="+d.path), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("unix", d.sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not listen on %s within 20 s; log:\n%s", d.sock, d.log())
		}
	}
}

// terminate stops containerd (SIGTERM, SIGKILL after 10 s); its shims and
// their tasks live on.
func (d *daemon) terminate() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "containerd.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stop checks that no shim or keep host process and no mount under the
// daemon's directories is left, then stops containerd and removes its
// directories.
func (d *daemon) stop() {
	t := d.t
	if !t.Failed() {
		// Containerd asks a shim to shut down once its task is deleted;
		// give the last one a moment to exit.
		var left []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if left = d.processes(); len(left) == 0 {
				break
			}
		}
		if len(left) > 0 {
			t.Errorf("shim processes left behind: %v", left)
		}
		if m := mountsUnder(d.dir); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
		}
		for s := range shimSockets() {
			if !d.sockets[s] {
				t.Errorf("shim socket left behind: /run/containerd/s/%s", s)
			}
		}
		if cg := taskCgroups(); len(cg) > 0 {
			t.Errorf("task cgroups left behind: %v", cg)
		}
	}
	d.terminate()
	// Whatever a failed test left: kill it, unmount, remove.
	for _, p := range d.pids() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for _, m := range mountsUnder(d.dir) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	os.RemoveAll(d.dir)
	// ctr's specs put tasks in /<namespace>/<id>; the namespace's own
	// cgroup is left by design (as runc leaves it), and removed here.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	if d, err := os.Stat("/sys/fs/cgroup/" + ns); err == nil && d.IsDir() {
		dirs = append(dirs, "/sys/fs/cgroup/"+ns)
	}
	for _, dir := range dirs {
		os.Remove(dir)
	}
}

// taskCgroups lists the task cgroups ctr's specs name (/<namespace>/<id>)
// that exist, in any hierarchy.
func taskCgroups() []string {
	v1, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns + "/*")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + ns + "/*")
	var out []string
	for _, p := range append(v1, v2...) {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// pids are the processes running the test's shim binary (shims and keep
// hosts; a sandbox Keep re-executes it too).
func (d *daemon) pids() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == d.shimBin {
			out = append(out, pid)
		}
	}
	return out
}

func (d *daemon) processes() []string {
	var out []string
	for _, p := range d.pids() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		out = append(out, fmt.Sprintf("%d: %s", p, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	return out
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// ctr runs ctr against the daemon and returns its combined output and
// exit status (-1 if it could not run).
func (d *daemon) ctr(ctx context.Context, args ...string) (string, int) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", d.sock, "--namespace", d.namespace}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+d.path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	return string(out) + err.Error(), -1
}

// mustCtr runs ctr and fails the test unless it exits 0.
func (d *daemon) mustCtr(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, code := d.ctr(ctx, args...)
	if code != 0 {
		t.Fatalf("ctr %s: status %d\n%s\ncontainerd log:\n%s", strings.Join(args, " "), code, out, d.log())
	}
	return out
}

// importImage builds an image with the test workload (and Enarx.toml, if
// not empty) and imports it; it returns the image name.
func (d *daemon) importImage(wasm []byte, enarxToml string) string {
	files := map[string][]byte{"main.wasm": wasm}
	if enarxToml != "" {
		files["Enarx.toml"] = []byte(enarxToml)
	}
	name := "docker.io/enarx/shim-test:" + sum(append(append([]byte(nil), wasm...), enarxToml...))
	tarPath := filepath.Join(d.dir, "image.tar")
	writeImage(d.t, tarPath, name, ocispec.Platform{OS: "wasi", Architecture: "wasm"}, files)
	d.mustCtr(d.t, "image", "import", "--platform", platform, tarPath)
	return name
}

// runtimeConfig writes the shim's runtime options for backend and returns
// the file's path. The compilation cache is shared by the test binary's
// daemons (each module compiles once).
func (d *daemon) runtimeConfig(backend string) string {
	p := filepath.Join(d.dir, "shim-"+backend+".toml")
	cache := filepath.Join(os.TempDir(), "enarx-shim-test-cache")
	os.MkdirAll(cache, 0o755)
	body := fmt.Sprintf("backend = %q\ncache_dir = %q\n", backend, cache)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// runArgs are ctr run's arguments for a container of image on backend.
func (d *daemon) runArgs(backend, image, id string, extra ...string) []string {
	args := []string{"run", "--rm", "--runtime", shim.RuntimeName, "--runtime-config-path", d.runtimeConfig(backend), "--platform", platform}
	args = append(args, extra...)
	return append(args, image, id)
}

// backends are the backends the tests run Keeps on: in the keep host
// (nil) and in a confined process of its own (sandbox).
var backends = []string{"nil", "sandbox"}

func workloadWasm(t testing.TB) []byte {
	b, err := os.ReadFile(testutil.BuildWasm(t, "testdata/workload"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// background is a ctr run in progress.
type background struct {
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
	code int
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *background) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func (d *daemon) start(args ...string) *background {
	b := &background{done: make(chan struct{})}
	cmd := exec.Command("ctr", append([]string{"--address", d.sock, "--namespace", d.namespace}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+d.path)
	cmd.Stdout, cmd.Stderr = b, b
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.code = ee.ExitCode()
		} else if err != nil {
			b.code = -1
		}
	}()
	return b
}

// waitOutput waits until the run's output holds s.
func (b *background) waitOutput(t testing.TB, s string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.output(), s) {
			return
		}
		select {
		case <-b.done:
			t.Fatalf("ctr run ended (status %d) without printing %q: %q", b.code, s, b.output())
		default:
		}
	}
	t.Fatalf("ctr run did not print %q within a minute: %q", s, b.output())
}

func (b *background) wait(t testing.TB) (string, int) {
	t.Helper()
	select {
	case <-b.done:
		return b.output(), b.code
	case <-time.After(time.Minute):
		t.Fatal("ctr run did not return within a minute")
	}
	return "", 0
}

// waitRunning waits until task id is RUNNING and returns its pid.
func (d *daemon) waitRunning(t testing.TB, id string) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, _ := d.ctr(context.Background(), "task", "ls")
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
				var pid int
				fmt.Sscanf(f[1], "%d", &pid)
				return pid
			}
		}
	}
	t.Fatalf("task %s is not running after 30 s; containerd log:\n%s", id, d.log())
	return 0
}

// dialIn connects to 127.0.0.1:port in the network namespace at nsPath,
// sends a line and returns what comes back.
func dialIn(nsPath string, port int) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves the test's namespace
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- result{err: err}
			return
		}
		// A raw socket: Go's net package may dial from another thread.
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(s)
		tv := unix.Timeval{Sec: 5}
		unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Connect(s, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			ch <- result{err: err}
			return
		}
		msg := []byte("ping through the Keep\n")
		if _, err := unix.Write(s, msg); err != nil {
			ch <- result{err: err}
			return
		}
		buf := make([]byte, 64)
		got := 0
		for got < len(msg) {
			n, err := unix.Read(s, buf[got:])
			if err != nil || n == 0 {
				ch <- result{string(buf[:got]), fmt.Errorf("read: %v (n=%d)", err, n)}
				return
			}
			got += n
		}
		ch <- result{s: string(buf[:got])}
	}()
	r := <-ch
	return r.s, r.err
}

// dialUntil retries dialIn until the Keep listens (it binds when it starts).
func dialUntil(t testing.TB, nsPath string) string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var s string
		if s, err = dialIn(nsPath, port); err == nil {
			return s
		}
	}
	t.Fatalf("no echo from 127.0.0.1:%d in %s: %v", port, nsPath, err)
	return ""
}

// TestContainerd is the workload table without an Enarx.toml in the image:
// hello (args and env from the OCI spec), exit status, a kill, and two
// Keeps at once, on each backend.
func TestContainerd(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), "")
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			want := `Hello from a Keep: args=["main.wasm" "hello" "a b"] GREETING="hi" FROM_CONFIG="" FD_NAMES="stdin:stdout:stderr"`
			// ctr run's arguments after the id replace the process's
			// whole argv (entrypoint included, unlike Kubernetes' args),
			// so they name the module first.
			out := d.mustCtr(t, append(d.runArgs(b, img, "hello-"+b, "--env", "GREETING=hi"), "/main.wasm", "hello", "a b")...)
			if !strings.Contains(out, want) {
				t.Errorf("hello: got %q, want %q", out, want)
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, code := d.ctr(ctx, append(d.runArgs(b, img, "exit-"+b), "/main.wasm", "exit", "3")...)
			if code != 3 || !strings.Contains(out, "exiting with 3") {
				t.Errorf("exit 3: status %d, output %q", code, out)
			}

			// Refusals say what is wrong, and leave nothing behind.
			out, code = d.ctr(ctx, append(d.runArgs(b, img, "noentry-"+b), "hello")...)
			if code == 0 || !strings.Contains(out, "reading the module /hello named by the entrypoint: no such file or directory") {
				t.Errorf("argv without the module: status %d, output %q", code, out)
			}

			// Two Keeps at once; SIGTERM (ctr task kill's default)
			// stops each, and the status says so.
			var runs []*background
			for i := range 2 {
				id := fmt.Sprintf("sleep%d-%s", i, b)
				runs = append(runs, d.start(append(d.runArgs(b, img, id), "/main.wasm", "sleep")...))
			}
			for _, r := range runs {
				r.waitOutput(t, "sleeping")
			}
			for i := range 2 {
				d.mustCtr(t, "task", "kill", fmt.Sprintf("sleep%d-%s", i, b))
			}
			for _, r := range runs {
				if out, code := r.wait(t); code != 128+int(syscall.SIGTERM) {
					t.Errorf("killed Keep: status %d (want %d), output %q", code, 128+int(syscall.SIGTERM), out)
				}
			}
		})
	}
}

// TestContainerdRefusals: a runtime options file naming a backend this
// build lacks is refused at create, with the backends it has, and so is an
// Enarx.toml naming a host directory the runtime options do not allow.
func TestContainerdRefusals(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), "")
	out, code := d.ctr(context.Background(), d.runArgs("tpm", img, "nobackend")...)
	if code == 0 || !strings.Contains(out, `Keep backend identifier "tpm" is unknown`) {
		t.Errorf("unknown backend: status %d, output %q", code, out)
	}
	d.ctr(context.Background(), "container", "rm", "nobackend")

	// An Enarx.toml (the image's, chosen by whoever may create a pod)
	// names a host directory: the keep host, root in the node's mount
	// namespace, would open it for the workload. Refused at create unless
	// the runtime options allow it; allowed, the Keep runs.
	host := t.TempDir()
	toml := "[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n\n" +
		"[[files]]\nname = \"node\"\nkind = \"dir\"\nguest_path = \"/node\"\nsource = \"host\"\nhost_path = \"" + host + "\"\n"
	img = d.importImage(workloadWasm(t), toml)
	args := append(d.runArgs("nil", img, "hostpath"), "/main.wasm", "hello")
	out, code = d.ctr(context.Background(), args...)
	if code == 0 || !strings.Contains(out, "names the host directory") || !strings.Contains(out, "allow_host_paths") {
		t.Errorf("a host directory no runtime option allows: status %d, output %q", code, out)
	}
	d.ctr(context.Background(), "container", "rm", "hostpath")
	opts := filepath.Join(t.TempDir(), "allow.toml")
	if err := os.WriteFile(opts, []byte(fmt.Sprintf("backend = \"nil\"\nallow_host_paths = [%q]\n", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	args[slices.Index(args, "--runtime-config-path")+1] = opts
	if out := d.mustCtr(t, args...); !strings.Contains(out, "Hello from a Keep") {
		t.Errorf("an allowed host directory: output %q", out)
	}
}

// TestContainerdEnarxToml is the workload table with an Enarx.toml in the
// image: its args and env come first (its env wins over the container's),
// its fd table applies, and its listen socket is bound in the task's
// network namespace: a new one (ctr run's default; two Keeps listen on the
// same port at once) or one the spec names (a Kubernetes pod's), never the
// host's.
func TestContainerdEnarxToml(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), configImage)
	podNS := netnsFile(t)
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			want := `Hello from a Keep: args=["main.wasm" "--from-config" "hello" "a b"] GREETING="from Enarx.toml" FROM_CONFIG="yes" FD_NAMES="stdin:stdout:stderr:ingest"`
			out := d.mustCtr(t, append(d.runArgs(b, img, "hello-"+b, "--env", "GREETING=hi"), "/main.wasm", "hello", "a b")...)
			if !strings.Contains(out, want) {
				t.Errorf("hello: got %q, want %q", out, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, code := d.ctr(ctx, append(d.runArgs(b, img, "exit-"+b), "/main.wasm", "exit", "3")...); code != 3 {
				t.Errorf("exit 3: status %d, output %q", code, out)
			}

			// Two serving Keeps at once, each in a new network namespace,
			// and one in the pod's.
			ids := []string{"serve0-" + b, "serve1-" + b, "pod-" + b}
			var runs []*background
			for i, id := range ids {
				var extra []string
				if i == 2 {
					extra = []string{"--with-ns", "network:" + podNS}
				}
				runs = append(runs, d.start(append(d.runArgs(b, img, id, extra...), "/main.wasm", "serve")...))
			}
			for i, r := range runs {
				r.waitOutput(t, "serving")
				nsPath := fmt.Sprintf("/proc/%d/ns/net", d.waitRunning(t, ids[i]))
				if i == 2 {
					nsPath = podNS
				}
				if got := dialUntil(t, nsPath); got != "ping through the Keep\n" {
					t.Errorf("%s: echo %q", ids[i], got)
				}
			}
			if _, err := dialIn(hostNetNS, port); !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("dialling 127.0.0.1:%d in the host's network namespace: %v, want connection refused (the Keeps listen in their own)", port, err)
			}
			// SIGKILL the first, SIGTERM the others.
			d.mustCtr(t, "task", "kill", "--signal", "SIGKILL", ids[0])
			for _, id := range ids[1:] {
				d.mustCtr(t, "task", "kill", id)
			}
			for i, r := range runs {
				want := 128 + int(syscall.SIGTERM)
				if i == 0 {
					want = 128 + int(syscall.SIGKILL)
				}
				if out, code := r.wait(t); code != want {
					t.Errorf("%s killed: status %d, want %d; output %q", ids[i], code, want, out)
				}
			}
		})
	}
}

// netnsFile makes a network namespace with loopback up, as a pod's
// sandbox has, bind-mounted on a file (as CNI's netns files are), and
// removes it at the end of the test.
func netnsFile(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "netns")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves the test's namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, p, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting the netns: %w", err)
			return
		}
		errc <- upLoopback()
	}()
	if err := <-errc; err != nil {
		testutil.NeedHost(t, "making a network namespace: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	return p
}

func upLoopback() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// TestShimCrash kills the shim of a serving Keep: its keep host dies with
// it (parent-death signal), and the Keep with the keep host; containerd
// notices the shim's end, runs the shim's cleanup (delete) and reports the
// task stopped; the container can be removed and nothing of the shim's is
// left (the daemon's cleanup checks processes and mounts).
func TestShimCrash(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), configImage)
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			id := "crash-" + b
			args := d.runArgs(b, img, id)
			args = slices.DeleteFunc(args, func(s string) bool { return s == "--rm" })
			r := d.start(append(args, "/main.wasm", "serve")...)
			r.waitOutput(t, "serving")
			pid := d.waitRunning(t, id)
			keep := descendantsOf(pid)
			shimPid := d.shimOf(t, id)
			if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			out, code := r.wait(t)
			t.Logf("ctr run after the shim's crash: status %d, %q", code, out)
			for _, p := range append(keep, pid) {
				waitGone(t, p)
			}
			ls := d.mustCtr(t, "task", "ls")
			if strings.Contains(ls, "RUNNING") {
				t.Errorf("a task still runs after its shim's crash:\n%s", ls)
			}
			d.ctr(context.Background(), "task", "rm", id)
			d.mustCtr(t, "container", "rm", id)
		})
	}
}

// shimOf is the pid of the shim serving task id.
func (d *daemon) shimOf(t testing.TB, id string) int {
	t.Helper()
	for _, p := range d.pids() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, "-id") && slices.Contains(args, id) && !slices.Contains(args, shim.KeepHostArg) {
			return p
		}
	}
	t.Fatalf("no shim process for task %s among %v", id, d.processes())
	return 0
}

// descendantsOf lists the processes below pid.
func descendantsOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		var state string
		var ppid, p int
		if i < 0 || func() bool { _, err := fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid); return err != nil }() {
			continue
		}
		if ppid == pid {
			fmt.Sscanf(e.Name(), "%d", &p)
			out = append(out, p)
			out = append(out, descendantsOf(p)...)
		}
	}
	return out
}

// waitGone waits until pid has exited (gone or a zombie).
func waitGone(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return
		}
	}
	t.Errorf("process %d still runs 10 s after its shim's crash", pid)
}

// TestContainerdPod runs what containerd's CRI asks of a runtime for a
// Kubernetes pod, by hand with ctr: the pod's sandbox container (CRI's
// annotation; the pause image is no wasm, so the shim runs its own pause)
// in the pod's network namespace, then a Keep that joins the namespace
// through the sandbox's pid, as CRI names it, and serves there.
func TestContainerdPod(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), configImage)
	podNS := netnsFile(t)
	sb := d.start(d.runArgs("sandbox", img, "pod-sandbox",
		"--annotation", "io.kubernetes.cri.container-type=sandbox", "--with-ns", "network:"+podNS)...)
	sbPid := d.waitRunning(t, "pod-sandbox")
	if ino(t, fmt.Sprintf("/proc/%d/ns/net", sbPid)) != ino(t, podNS) {
		t.Fatalf("the pod sandbox's process %d is not in the pod's network namespace", sbPid)
	}
	app := d.start(append(d.runArgs("sandbox", img, "pod-app",
		"--annotation", "io.kubernetes.cri.container-type=container",
		"--annotation", "io.kubernetes.cri.sandbox-id=pod-sandbox",
		"--with-ns", fmt.Sprintf("network:/proc/%d/ns/net", sbPid)), "/main.wasm", "serve")...)
	app.waitOutput(t, "serving")
	if got := dialUntil(t, podNS); got != "ping through the Keep\n" {
		t.Errorf("echo in the pod's namespace: %q", got)
	}
	d.mustCtr(t, "task", "kill", "pod-app")
	if out, code := app.wait(t); code != 128+int(syscall.SIGTERM) {
		t.Errorf("app: status %d, output %q", code, out)
	}
	d.mustCtr(t, "task", "kill", "pod-sandbox")
	if out, code := sb.wait(t); code != 0 {
		t.Errorf("pod sandbox (pause) stopped by SIGTERM: status %d, want 0; output %q", code, out)
	}
}

// ino is the inode of a namespace file: equal inodes, same namespace.
func ino(t testing.TB, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestContainerdRestart restarts containerd under a serving Keep: the
// shim and its Keep live on, the new daemon reconnects to the shim (the
// task is RUNNING with the same pid and still serves), and the task can
// then be killed and removed as usual.
func TestContainerdRestart(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), configImage)
	args := slices.DeleteFunc(d.runArgs("sandbox", img, "restart"), func(s string) bool { return s == "--rm" })
	r := d.start(append(args, "/main.wasm", "serve")...)
	r.waitOutput(t, "serving")
	pid := d.waitRunning(t, "restart")
	d.terminate()
	r.wait(t) // ctr loses its daemon
	d.launch()
	if again := d.waitRunning(t, "restart"); again != pid {
		t.Errorf("after the restart the task's pid is %d, was %d", again, pid)
	}
	if got := dialUntil(t, fmt.Sprintf("/proc/%d/ns/net", pid)); got != "ping through the Keep\n" {
		t.Errorf("echo after the restart: %q", got)
	}
	d.mustCtr(t, "task", "kill", "restart")
	waitGone(t, pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, code := d.ctr(context.Background(), "task", "rm", "restart"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed task could not be removed:\n%s", d.mustCtr(t, "task", "ls"))
		}
	}
	d.mustCtr(t, "container", "rm", "restart")
}

// TestContainerdCgroup: the task's keep host and its Keep run in the
// cgroup the spec names, with the spec's limits (ctr run --memory-limit),
// ctr task metrics reads it through the shim's Stats, and it is removed
// with the task.
func TestContainerdCgroup(t *testing.T) {
	d := startContainerd(t)
	img := d.importImage(workloadWasm(t), "")
	const limit = 256 << 20
	r := d.start(append(d.runArgs("sandbox", img, "cg", "--memory-limit", fmt.Sprint(limit)), "/main.wasm", "sleep")...)
	r.waitOutput(t, "sleeping")
	pid := d.waitRunning(t, "cg")
	procs := append([]int{pid}, descendantsOf(pid)...)
	if len(procs) < 2 {
		t.Errorf("the sandbox Keep is not below the keep host: %v", procs)
	}
	want := "/" + ns + "/cg"
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), ":memory:"+want+"\n") && !strings.Contains(string(b), "0::"+want+"\n") {
			t.Errorf("process %d is not in the task's memory cgroup %s:\n%s", p, want, b)
		}
	}
	lim, err := os.ReadFile("/sys/fs/cgroup/memory" + want + "/memory.limit_in_bytes")
	if err != nil {
		lim, err = os.ReadFile("/sys/fs/cgroup" + want + "/memory.max")
	}
	if err != nil || strings.TrimSpace(string(lim)) != fmt.Sprint(limit) {
		t.Errorf("memory limit %q (%v), want %d", lim, err, limit)
	}
	if out := d.mustCtr(t, "task", "metrics", "cg"); !strings.Contains(out, "memory") {
		t.Errorf("ctr task metrics: %q", out)
	}
	d.mustCtr(t, "task", "kill", "cg")
	if _, code := r.wait(t); code != 128+int(syscall.SIGTERM) {
		t.Errorf("status %d", code)
	}
	if cg := taskCgroups(); len(cg) > 0 {
		t.Errorf("cgroups left after the task's removal: %v", cg)
	}
}
