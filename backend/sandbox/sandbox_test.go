package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestMain lets the test binary double as the Keep process: the sandbox
// re-executes /proc/self/exe with KeepArg, as enarx does.
func TestMain(m *testing.M) {
	testBinary = true
	ServeKeeps(testRunner)
	// A compilation cache the Keep user ("nobody" when tests run as root)
	// can reach.
	d, err := os.MkdirTemp("", "enarx-sandbox-cache-")
	if err != nil {
		panic(err)
	}
	os.Chmod(d, 0o711)
	testCacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var testCacheDir string

// fakeWasm marks a job for the fake runner.
var fakeWasm = []byte("FAKE")

// testRunner runs real modules with the real runtime (keep.Run); a
// "module" starting with FAKE stands in for the runtime in the lifecycle
// tests, interpreting its arguments as a tiny command and reporting what
// it observed as its error.
func testRunner(ctx context.Context, w keep.Workload, o keep.Options) (int, error) {
	if !bytes.HasPrefix(w.Wasm, fakeWasm) {
		return keep.Run(ctx, w, o)
	}
	if len(o.Args) == 0 {
		return 0, nil
	}
	switch o.Args[0] {
	case "exit":
		n, _ := strconv.Atoi(o.Args[1])
		return n, nil
	case "fail":
		return 1, errors.New(o.Args[1])
	case "echo": // copy fd 0 to fd 1
		_, err := io.Copy(o.Files[1], o.Files[0])
		return 0, err
	case "gomaxprocs":
		return 0, fmt.Errorf("gomaxprocs=%d", runtime.GOMAXPROCS(0))
	case "digest":
		return 0, fmt.Errorf("wasm=%s config=%q", digest(w.Wasm), w.Config)
	case "volumekeys": // what keep.Options.VolumeKeys holds (dirs_test.go)
		return 0, volumeKeysReport(o)
	case "cachedir": // the compilation cache the Keep was given
		return 0, fmt.Errorf("cachedir=%q", o.CacheDir)
	case "probe": // containment probes, ';'-separated "name[:arg]"
		return 0, probe(o.Args[1])
	case "threads": // start N more threads, then wait
		n, _ := strconv.Atoi(o.Args[1])
		for range n {
			go func() { runtime.LockOSThread(); select {} }()
		}
		time.Sleep(time.Hour)
	case "spin":
		for {
		}
	case "sleep":
		time.Sleep(time.Hour)
	}
	return 2, fmt.Errorf("unknown test command %q", o.Args[0])
}

// fake is a launch of the fake runner's command args, without a
// compilation cache.
func fake(args ...string) *backend.Launch {
	return &backend.Launch{Workload: keep.Workload{Wasm: fakeWasm}, Options: keep.Options{Args: args, NoCache: true}}
}

// skipLayers is the test seam's request (testseam.go) to leave the named
// layers out.
func skipLayers(names ...string) []string {
	if len(names) == 0 {
		return nil
	}
	b, err := json.Marshal(names)
	if err != nil {
		panic(err)
	}
	return []string{testSkipEnv + "=" + string(b)}
}

// probesPrefix starts the error that carries the probes' outcomes.
const probesPrefix = "probes: "

// probe runs the containment probes named in list (';'-separated
// "name[:arg]") inside the confined Keep and returns their outcomes, in
// the same form, as an error.
func probe(list string) error {
	var out []string
	for _, p := range strings.Split(list, ";") {
		name, arg, _ := strings.Cut(p, ":")
		h, ok := containmentHooks[name]
		if !ok {
			return fmt.Errorf("unknown probe %q", p)
		}
		out = append(out, h(arg))
	}
	return errors.New(probesPrefix + strings.Join(out, ";"))
}

func errnoString(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if err == nil {
		return "ALLOWED"
	}
	return err.Error()
}

// containmentHooks attempt, inside the confined Keep, what a compromised
// workload would try. Each returns the errno the kernel gave.
var containmentHooks = map[string]func(arg string) string{
	"open-host-file": func(string) string {
		_, err := unix.Open("/etc/passwd", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return errnoString(err)
	},
	// open-host-file-threads tries the open from several locked threads
	// at once: the layers must hold on every thread, not only the one
	// that confined the Keep. It answers the one outcome all had, or
	// every outcome.
	"open-host-file-threads": func(string) string {
		const n = 8
		out := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range out {
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				<-start
				_, err := unix.Open("/etc/passwd", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				out[i] = errnoString(err)
			})
		}
		close(start)
		wg.Wait()
		if slices.Equal(slices.Compact(slices.Clone(out)), out[:1]) {
			return out[0]
		}
		return strings.Join(out, ",")
	},
	"stat-host-file": func(string) string {
		var st unix.Stat_t
		return errnoString(unix.Stat("/etc/passwd", &st))
	},
	"socket": func(string) string {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return errnoString(err)
	},
	"socket-unix": func(string) string {
		_, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		return errnoString(err)
	},
	"execve": func(string) string {
		return errnoString(unix.Exec("/bin/true", []string{"true"}, nil))
	},
	"clone-process": func(string) string {
		_, _, e := unix.RawSyscall(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0)
		return errnoString(errnoOrNil(e))
	},
	"clone3": func(string) string {
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return errnoString(errnoOrNil(e))
	},
	"memfd_create": func(string) string {
		fd, err := unix.MemfdCreate("probe", unix.MFD_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
		return errnoString(err)
	},
	"ptrace": func(string) string {
		_, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		return errnoString(errnoOrNil(e))
	},
	"mount": func(string) string {
		return errnoString(unix.Mount("x", "/", "tmpfs", 0, ""))
	},
	"unshare": func(string) string {
		return errnoString(unix.Unshare(unix.CLONE_NEWUSER))
	},
	"ppid": func(string) string { return strconv.Itoa(preConfinePPID) },
	"fd-open": func(arg string) string {
		fd, _ := strconv.Atoi(arg)
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return errnoString(err)
	},
	"kill-host": func(arg string) string {
		pid, _ := strconv.Atoi(arg)
		return errnoString(unix.Kill(pid, 0))
	},
	"connect-host": func(arg string) string {
		port, _ := strconv.Atoi(arg)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return "socket:" + errnoString(err)
		}
		defer unix.Close(fd)
		return errnoString(unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}))
	},
	// The seccomp argument filters: fcntl only by allowed command, sendto
	// only without a destination, no sendmsg. fd 3 is the control socket.
	"fcntl-getfl": func(string) string {
		_, err := unix.FcntlInt(0, unix.F_GETFL, 0)
		return errnoString(err)
	},
	"fcntl-setown": func(string) string {
		_, err := unix.FcntlInt(3, unix.F_SETOWN, 1)
		return errnoString(err)
	},
	"sendto-addr": func(string) string {
		return errnoString(unix.Sendto(3, nil, 0, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}))
	},
	// Calls that fail their own argument test and look like another
	// call's to a filter that compares their arguments with system call
	// numbers (go-seccomp-bpf's assembly did; see assembleSeccomp):
	// newfstatat's flags 44 are sendto's number, sendto's destination
	// address 234 tgkill's, and fd 1 passes tgkill's pid test. Refused,
	// they fail with EPERM; let through, with EINVAL and ENOTSOCK.
	"stat-flags-as-sendto": func(string) string {
		var st unix.Stat_t
		root := []byte("/\x00")
		cwd := unix.AT_FDCWD
		_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, uintptr(cwd), uintptr(unsafe.Pointer(&root[0])), uintptr(unsafe.Pointer(&st)), 44, 0, 0)
		return errnoString(errnoOrNil(e))
	},
	"sendto-addr-as-tgkill": func(string) string {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, 1, 0, 0, 0, 234, 16)
		return errnoString(errnoOrNil(e))
	},
	"sendmsg": func(string) string {
		var msg unix.Msghdr
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, 3, uintptr(unsafe.Pointer(&msg)), 0)
		return errnoString(errnoOrNil(e))
	},
	"write-root": func(string) string {
		_, err := unix.Open("/x", unix.O_CREAT|unix.O_WRONLY, 0o600)
		return errnoString(err)
	},
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// runHook runs the containment probes hook in a Keep without the layers
// in skip; it returns the layers the Keep reported and the probes'
// outcomes.
func runHook(t *testing.T, hook string, skip ...string) ([]Layer, string) {
	t.Helper()
	var stderr bytes.Buffer
	code, layers, err := run(context.Background(), fake("probe", hook), hostOptions{stderr: &stderr, env: skipLayers(skip...)})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probes %s: %d, %v (stderr %s)", hook, code, err, stderr.String())
	}
	return layers, out
}

func layerOn(layers []Layer, name string) bool {
	for _, l := range layers {
		if l.Name == name {
			return l.Enabled
		}
	}
	return false
}

// TestContainment attempts, inside a confined Keep, what an escaped
// workload would try, first with every layer and then with layers left out
// so that each layer is shown to refuse on its own.
func TestContainment(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	hostPID := strconv.Itoa(os.Getpid())

	type check struct {
		hook string
		want []string // acceptable outcomes
	}
	variants := []struct {
		name   string
		skip   []string
		needs  string // a layer that must be in force for the variant to mean anything
		checks []check
	}{
		{name: "all layers", checks: []check{
			{"open-host-file", []string{"EPERM"}},
			{"open-host-file-threads", []string{"EPERM"}},
			{"stat-host-file", []string{"EPERM"}},
			{"write-root", []string{"EPERM"}},
			{"socket", []string{"EPERM"}},
			{"socket-unix", []string{"EPERM"}},
			{"connect-host:" + port, []string{"socket:EPERM"}},
			{"execve", []string{"EPERM"}},
			{"clone-process", []string{"EPERM"}},
			{"clone3", []string{"ENOSYS"}},
			{"memfd_create", []string{"ENOSYS"}},
			{"ptrace", []string{"EPERM"}},
			{"mount", []string{"EPERM"}},
			{"unshare", []string{"EPERM"}},
			{"kill-host:" + hostPID, []string{"EPERM"}},
			{"fcntl-getfl", []string{"ALLOWED"}},
			{"fcntl-setown", []string{"EPERM"}},
			{"sendto-addr", []string{"EPERM"}},
			{"sendmsg", []string{"EPERM"}},
			{"stat-flags-as-sendto", []string{"EPERM"}},
			{"sendto-addr-as-tgkill", []string{"EPERM"}},
		}},
		{name: "seccomp alone", skip: []string{LayerMountNS, LayerLandlock}, needs: LayerSeccomp, checks: []check{
			{"open-host-file", []string{"EPERM"}},
			{"socket", []string{"EPERM"}},
			{"execve", []string{"EPERM"}},
		}},
		{name: "namespaces without seccomp and landlock", skip: []string{LayerSeccomp, LayerLandlock}, needs: LayerMountNS, checks: []check{
			{"open-host-file", []string{"ENOENT"}},
			{"execve", []string{"ENOENT"}},
			{"write-root", []string{"EROFS"}},
			{"connect-host:" + port, []string{"ENETUNREACH", "ECONNREFUSED"}},
			{"kill-host:" + hostPID, []string{"ESRCH"}},
		}},
		{name: "landlock alone", skip: []string{LayerSeccomp, LayerMountNS}, needs: LayerLandlock, checks: []check{
			{"open-host-file", []string{"EACCES"}},
			{"open-host-file-threads", []string{"EACCES"}},
			{"execve", []string{"EACCES"}},
		}},
	}
	if _, ok := containmentHooks["fork"]; ok { // fork(2) is not on every architecture
		variants[0].checks = append(variants[0].checks, check{"fork", []string{"EPERM"}})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if v.needs != "" {
				// Check first: without the layer, execve would succeed.
				if layers, _ := runHook(t, "ppid", v.skip...); !layerOn(layers, v.needs) {
					testutil.NeedHost(t, "layer %q is not available here", v.needs)
				}
			}
			hooks := make([]string, len(v.checks))
			for i, c := range v.checks {
				hooks[i] = c.hook
			}
			_, all := runHook(t, strings.Join(hooks, ";"), v.skip...)
			got := strings.Split(all, ";")
			for i, c := range v.checks {
				if !slices.Contains(c.want, got[i]) {
					t.Errorf("%s inside the Keep: got %s, want one of %v", c.hook, got[i], c.want)
				}
			}
		})
	}
}

// TestLayersReported requires every layer in the Keep that the probe
// (the one `enarx platform info` shows) says this kernel supports, and
// the kernel-independent ones always.
func TestLayersReported(t *testing.T) {
	layers, ppid := runHook(t, "ppid")
	kernel := map[string]string{ // layer → the probe row it depends on
		LayerUserNS: "User namespaces", LayerPIDNS: "PID namespaces", LayerMountNS: "Mount namespaces",
		LayerNetNS: "Network namespaces", LayerIPCNS: "IPC namespaces", LayerUTSNS: "UTS namespaces",
		LayerLandlock: capLandlock, LayerSeccomp: capSeccomp,
	}
	probe := map[string]Capability{}
	for _, c := range Probe() {
		probe[c.Name] = c
	}
	want := []string{LayerUserNS, LayerPIDNS, LayerMountNS, LayerNetNS, LayerIPCNS, LayerUTSNS,
		LayerNNP, LayerCaps, LayerLandlock, LayerRlimits, LayerSeccomp}
	var got []string
	var lacking []string
	for _, l := range layers {
		t.Logf("%-50s %-5v %6dµs %s", l.Name, l.Enabled, l.Micros, l.Detail)
		got = append(got, l.Name)
		if l.Enabled {
			continue
		}
		row, ok := kernel[l.Name]
		switch {
		case !ok:
			t.Errorf("layer %s not in force: %s", l.Name, l.Detail)
		case probe[row].OK:
			t.Errorf("layer %s not in force although the probe says the kernel has %s (%s): %s", l.Name, row, probe[row].Info, l.Detail)
		default:
			lacking = append(lacking, fmt.Sprintf("%s (%s)", row, probe[row].Info))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("layers reported %q, want %q", got, want)
	}
	if layerOn(layers, LayerPIDNS) && ppid != "0" {
		t.Errorf("Keep sees its parent as pid %s; want 0 (own pid namespace)", ppid)
	}
	if len(lacking) > 0 {
		testutil.NeedHost(t, "the kernel lacks %s", strings.Join(lacking, ", "))
	}
}

// TestEarlySteps: a cgo build's Keep sets no_new_privs and empties its
// bounding and ambient sets before the Go runtime starts (cgo_linux.go's
// constructor, which must recognise the Keep by KeepArg), and every other
// process of the binary — this test's host — is left alone.
func TestEarlySteps(t *testing.T) {
	if earlyArg() != KeepArg {
		t.Fatalf("the constructor recognises a Keep by %q, the host starts it with %q", earlyArg(), KeepArg)
	}
	if nnp, bounding, ambient := earlySteps(); nnp || bounding || ambient {
		t.Fatalf("the host took the Keep's first steps: no_new_privs %v, bounding set %v, ambient set %v", nnp, bounding, ambient)
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 0 {
		t.Fatalf("the host has no_new_privs: %d %v", v, err)
	}
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	_, layers, err := run(context.Background(), fake("exit", "0"), hostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if l.Name == LayerNNP {
			early := l.Detail == "set before the Go runtime started its threads"
			if !l.Enabled || early != ownProcNeeded {
				t.Fatalf("no_new_privs: %+v; want it set early in (only) a cgo build (cgo: %v)", l, ownProcNeeded)
			}
		}
	}
}

// TestKeepThreadsConfined reads, from the host, /proc/<pid>/task/*/status
// of a confined Keep that has started more threads: every thread (this
// test binary's build decides whether some are glibc's) must hold no
// capability, with no_new_privs and seccomp in filter mode. Landlock has no
// /proc field; TestContainment checks it from inside, on several threads.
func TestKeepThreadsConfined(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	const extra = 4
	pid, done := startConfinedKeep(t, "threads", strconv.Itoa(extra))
	checkKeepThreads(t, pid, extra+1, done)
}

// hostLacksLayers names the kernel features the Keep's layers need that
// the probe finds missing, or "".
func hostLacksLayers() string {
	var missing []string
	for _, c := range Probe() {
		if !c.OK {
			missing = append(missing, c.Name+" ("+c.Info+")")
		}
	}
	return strings.Join(missing, ", ")
}

// keepStatusFields are the /proc/<pid>/status fields checked on every
// thread of a confined Keep, and their required values.
var keepStatusFields = map[string]string{
	"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
	"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
}

// checkKeepThreads waits until the Keep pid has installed its seccomp
// filter and runs at least minThreads threads (or done reports its end),
// then checks keepStatusFields on every thread.
func checkKeepThreads(t *testing.T, pid, minThreads int, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var tasks []string
	for {
		tasks, _ = filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if len(tasks) >= minThreads && bytes.Contains(st, []byte("\nSeccomp:\t2\n")) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Keep %d ended before it was confined with %d threads: %v", pid, minThreads, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Keep %d: %d threads and no seccomp filter after a minute:\n%s", pid, len(tasks), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]int{}
	seenGone := 0
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			seenGone++ // the thread exited meanwhile
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			if want, ok := keepStatusFields[k]; ok {
				seen[k]++
				if v = strings.TrimSpace(v); v != want {
					t.Errorf("%s: %s = %s, want %s", task, k, v, want)
				}
			}
		}
	}
	for k := range keepStatusFields {
		if seen[k] != len(tasks)-seenGone {
			t.Errorf("%s found in %d of %d thread status files", k, seen[k], len(tasks))
		}
	}
	t.Logf("Keep %d: %d threads, each with %v", pid, len(tasks), keepStatusFields)
}

// TestInheritedFDsStayOut: a descriptor the host process inherited
// without close-on-exec (enarx started by a careless parent) must not
// reach the Keep; the control channel the host passed must.
func TestInheritedFDsStayOut(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// A free descriptor above those the host passes, without O_CLOEXEC.
	leaked, err := unix.FcntlInt(r.Fd(), unix.F_DUPFD, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leaked)
	_, got := runHook(t, "fd-open:"+strconv.Itoa(leaked)+";fd-open:"+strconv.Itoa(controlFD))
	if got != "EBADF;ALLOWED" {
		t.Fatalf("fd %d, fd %d in the Keep: %s; want EBADF;ALLOWED", leaked, controlFD, got)
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	for _, n := range []int{0, 3, 255} {
		code, err := Backend{}.Run(context.Background(), fake("exit", strconv.Itoa(n)))
		if err != nil || code != n {
			t.Errorf("exit %d: got %d, %v", n, code, err)
		}
	}
	code, err := Backend{}.Run(context.Background(), fake("fail", "wasm trap: unreachable"))
	if code != 1 || err == nil || err.Error() != "wasm trap: unreachable" {
		t.Errorf("fail: %d %v", code, err)
	}
}

func TestModuleAndConfigArrive(t *testing.T) {
	wasm := append([]byte("FAKE"), bytes.Repeat([]byte{0, 'a', 's', 'm'}, 1<<20)...) // 4 MiB: larger than a socket buffer
	// Through the sealed memfd and through the socket fallback; an empty
	// Enarx.toml stays an empty config (not the default one) either way.
	for _, socket := range []bool{false, true} {
		for _, cfg := range []string{"x = 1", ""} {
			l := fake("digest")
			l.Workload = keep.Workload{Wasm: wasm, Config: []byte(cfg)}
			_, _, err := run(context.Background(), l, hostOptions{socketPayload: socket})
			want := fmt.Sprintf("wasm=%s config=%q", digest(wasm), cfg)
			if err == nil || err.Error() != want {
				t.Fatalf("socket payload %v: got %v, want %s", socket, err, want)
			}
		}
	}
}

// TestKeepGetsHostGOMAXPROCS: the Keep confines itself with GOMAXPROCS=1
// and then runs the workload with the host's setting, as nil does.
func TestKeepGetsHostGOMAXPROCS(t *testing.T) {
	_, err := Backend{}.Run(context.Background(), fake("gomaxprocs"))
	if want := fmt.Sprintf("gomaxprocs=%d", runtime.GOMAXPROCS(0)); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestStdioThroughKeep(t *testing.T) {
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	go func() {
		inW.Write(bytes.Repeat([]byte("0123456789abcdef"), 1<<16))
		inW.Close()
	}()
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(outR); got <- b }()
	l := fake("echo")
	l.Files = []*os.File{inR, outW}
	code, err := Backend{}.Run(context.Background(), l)
	inR.Close()
	outW.Close()
	if code != 0 || err != nil {
		t.Fatalf("%d %v", code, err)
	}
	if b := <-got; len(b) != 16<<16 {
		t.Fatalf("echoed %d bytes", len(b))
	}
}

func TestTimeoutKillsRunaway(t *testing.T) {
	l := fake("spin")
	l.Policy.Timeout = 300 * time.Millisecond
	code, err := Backend{}.Run(context.Background(), l)
	if !errors.Is(err, ErrTimeout) || code != 1 {
		t.Fatalf("got %d %v", code, err)
	}
}

func TestCancelStopsKeep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	code, err := Backend{}.Run(ctx, fake("sleep"))
	if err == nil || code != 1 {
		t.Fatalf("got %d %v", code, err)
	}
}

// TestKillingHostKillsKeep runs a host process that starts a Keep, kills
// the host with SIGKILL and checks that the Keep is gone too.
func TestKillingHostKillsKeep(t *testing.T) {
	if os.Getenv("SANDBOX_TEST_HOST") == "1" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHost$")
	cmd.Env = append(os.Environ(), "SANDBOX_TEST_HOST=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var line [32]byte
	n, _ := io.ReadAtLeast(out, line[:], 2)
	fields := strings.Fields(string(line[:n]))
	if len(fields) == 0 {
		t.Fatalf("helper printed %q", line[:n])
	}
	keepPID, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatalf("helper printed %q", line[:n])
	}
	if err := unix.Kill(keepPID, 0); err != nil {
		t.Fatalf("Keep %d not running before the host is killed: %v", keepPID, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := unix.Kill(keepPID, 0); errors.Is(err, unix.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Keep %d survived its host", keepPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHelperHost is the host process of TestKillingHostKillsKeep.
func TestHelperHost(t *testing.T) {
	if os.Getenv("SANDBOX_TEST_HOST") != "1" {
		t.Skip("helper")
	}
	startedHook = func(pid int) { fmt.Printf("%d\n", pid); os.Stdout.Sync() }
	Backend{}.Run(context.Background(), fake("sleep"))
}

// TestKeepRejectsDigestMismatch: a module corrupted in transit is
// refused by keep.Run, to which the Keep passes the host's digest.
func TestKeepRejectsDigestMismatch(t *testing.T) {
	var b bytes.Buffer
	l := &launch{wasm: []byte("module")}
	if err := l.encode(&b); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	raw[len(raw)-1] ^= 1 // corrupt the module in transit
	got, err := decodeLaunch(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := runDecoded(got); err == nil || !strings.Contains(err.Error(), "module digest mismatch") {
		t.Fatalf("err = %v", err)
	}
	// A header without a well-formed digest is refused as it is read.
	for _, d := range []string{"", "ab", strings.Repeat("A", 64), strings.Repeat("0", 63) + "g"} {
		b.Reset()
		writeMsg(&b, launchMagic, &launch{WasmSHA256: d})
		if _, err := decodeLaunch(&b); err == nil || !strings.Contains(err.Error(), "is not a hex SHA-256") {
			t.Errorf("digest %q: %v", d, err)
		}
	}
}

// runDecoded runs a decoded launch's workload with keep.Run, as the Keep
// process does (no files, no cache).
func runDecoded(l *launch) error {
	w, o := l.keepArgs(nil, nil, "", nil)
	_, err := keep.Run(context.Background(), w, o)
	return err
}

func FuzzDecodeLaunch(f *testing.F) {
	var b bytes.Buffer
	(&launch{wasm: []byte("\x00asm"), config: []byte("[[files]]"), HasConfig: true, Args: []string{"a"}, NFiles: 2}).encode(&b)
	f.Add(b.Bytes())
	f.Add([]byte("EKL1\x00\x00\x00\x02{}"))
	b.Reset()
	(&launch{wasm: []byte("\x00asm"), PayloadFD: true}).encode(&b) // refused: no memfd to map
	f.Add(b.Bytes())
	f.Add([]byte("EKL1\x00\x00\x00\x10{\"wasm_len\":1e9}"))
	b.Reset()
	(&launch{wasm: []byte("\x00asm"), NFiles: 2, Null: []int{0}, Dirs: []launchDir{{Index: 1, ReadOnly: true, Path: "/srv/data"}},
		volumeKeys: map[string][]byte{"file:/k": bytes.Repeat([]byte{7}, volumeKeySize)}}).encode(&b)
	f.Add(b.Bytes())
	// Property: an accepted launch has exactly the module bytes its header
	// announces and a well-formed digest for keep.Run to check them
	// against (TestKeepRejectsDigestMismatch), the config its digest
	// names, every volume key is exactly 32 bytes, and every directory is
	// a passed file.
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := decodeLaunch(bytes.NewReader(data))
		if err != nil {
			return
		}
		if !isSHA256Hex(l.WasmSHA256) || int64(len(l.wasm)) != l.WasmLen {
			t.Fatal("accepted a module without its digest or of another length")
		}
		if l.config != nil && digest(l.config) != l.ConfigSHA256 {
			t.Fatal("accepted a config that does not match its digest")
		}
		for spec, k := range l.volumeKeys {
			if len(k) != volumeKeySize || spec == "" {
				t.Fatalf("accepted a volume key of %d bytes for %q", len(k), spec)
			}
		}
		for _, d := range l.Dirs {
			if d.Index < 0 || d.Index >= l.NFiles || slices.Contains(l.Null, d.Index) {
				t.Fatalf("accepted directory %d of %d files (null %v)", d.Index, l.NFiles, l.Null)
			}
		}
	})
}

func TestRequireIsolation(t *testing.T) {
	var stderr bytes.Buffer
	l := fake("exit", "0")
	l.Policy.RequireIsolation = true
	code, _, err := run(context.Background(), l, hostOptions{stderr: &stderr, env: skipLayers(LayerNNP, LayerLandlock)})
	if code != 1 || err == nil || !strings.Contains(err.Error(), "--require-isolation: the sandbox Keep is missing confinement layers:") ||
		!strings.Contains(err.Error(), "landlock (no file system, no TCP bind/connect) (left out by a test)") {
		t.Fatalf("got %d %v", code, err)
	}
	// Without --require-isolation the same Keep runs and warns (it logs
	// at the level the host's logger has).
	stderr.Reset()
	l = fake("exit", "0")
	l.Options.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	code, _, err = run(context.Background(), l, hostOptions{stderr: &stderr, env: skipLayers(LayerLandlock)})
	if code != 0 || err != nil || !strings.Contains(stderr.String(), "sandbox Keep runs without some confinement layers") {
		t.Fatalf("got %d %v, stderr %q", code, err, stderr.String())
	}
}

// TestWithoutOwnProc: a cgo build whose kernel refuses the Keep its own
// /proc cannot reach every thread. It must say so — the capabilities and
// Landlock reported missing, --require-isolation refusing — rather than
// confine one thread, or hang (psx, unable to list the threads, would spin
// forever in a pid namespace's init). Its no_new_privs is in force: it was
// set before the Go runtime started a thread (earlySteps). A
// CGO_ENABLED=0 build needs no /proc and has every layer.
func TestWithoutOwnProc(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	l := fake("exit", "0")
	code, layers, err := run(context.Background(), l, hostOptions{env: skipLayers(testSkipOwnProc)})
	if code != 0 || err != nil {
		t.Fatalf("got %d %v", code, err)
	}
	missing := map[string]string{}
	for _, ly := range layers {
		if !ly.Enabled {
			missing[ly.Name] = ly.Detail
		}
	}
	if !ownProcNeeded {
		if len(missing) != 0 {
			t.Fatalf("CGO_ENABLED=0 build: missing %v", missing)
		}
		return
	}
	want := map[string]string{
		LayerCaps:     "capset: " + errNoOwnProc.Error(),
		LayerLandlock: errNoOwnProc.Error(),
	}
	if !maps.Equal(missing, want) {
		t.Fatalf("cgo build: missing %v, want %v", missing, want)
	}
	l = fake("exit", "0")
	l.Policy.RequireIsolation = true
	code, _, err = run(context.Background(), l, hostOptions{env: skipLayers(testSkipOwnProc)})
	if code != 1 || err == nil || !strings.Contains(err.Error(), "--require-isolation") {
		t.Fatalf("with --require-isolation: %d %v", code, err)
	}
}

// TestDocsListEverySyscall keeps docs/sandbox.md's table complete.
func TestDocsListEverySyscall(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sandbox.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slices.Concat(allowedSyscalls, cacheSyscalls, dirSyscalls) {
		if !strings.Contains(string(doc), "| `"+s.name+"` | "+s.reason+" |") {
			t.Errorf("docs/sandbox.md does not list %s (%s)", s.name, s.reason)
		}
	}
}

// TestSkipSeamOnlyInTestBinaries: a Keep leaves layers out only in a test
// binary of this package; enarx's Keep (testBinary unset) ignores the
// request, and the launch message has no field for it.
func TestSkipSeamOnlyInTestBinaries(t *testing.T) {
	t.Setenv(testSkipEnv, `["`+LayerSeccomp+`"]`)
	if !testSkip()[LayerSeccomp] {
		t.Fatalf("test binary: skip %v", testSkip())
	}
	testBinary = false
	defer func() { testBinary = true }()
	if testSkip() != nil {
		t.Fatalf("outside tests: skip %v", testSkip())
	}
	var b bytes.Buffer
	if err := (&launch{wasm: []byte("module")}).encode(&b); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("skip")) || bytes.Contains(b.Bytes(), []byte("hook")) {
		t.Fatalf("launch message carries a test field: %q", b.Bytes())
	}
}
