package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/enarx-go/enarx/microvm/vmm"
)

// The test binary doubles as a fake QEMU (chosen by the name it is run
// under) and as a helper process that launches a VM and is then killed.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "fake-qemu-hang":
		time.Sleep(time.Hour)
		os.Exit(0)
	case "fake-qemu-garbage":
		fmt.Println("hello, I am not QEMU")
		os.Exit(0)
	case "fake-qemu-9.1":
		fakeQEMU91()
	case "fake-qemu-sleep":
		fakeQEMUSleep()
	}
	if os.Getenv("VMMTEST_HELPER") == "1" {
		helperMain()
		return
	}
	code := m.Run()
	if guestInit.path != "" {
		os.RemoveAll(filepath.Dir(guestInit.path))
	}
	os.Exit(code)
}

// fakeQEMU91 is a QEMU 9.1.2 without seccomp that, when launched,
// reports on stdout (the console) what it was given, writes to its
// channel descriptor and exits 3 with a message on stderr.
func fakeQEMU91() {
	args := os.Args[1:]
	switch {
	case slices.Equal(args, []string{"--version"}):
		fmt.Println("QEMU emulator version 9.1.2 (fake)")
		os.Exit(0)
	case len(args) > 0 && args[0] == "-sandbox":
		fmt.Fprintln(os.Stderr, "fake-qemu-9.1: -sandbox is not supported by this QEMU binary")
		os.Exit(1)
	}
	for _, a := range args {
		fmt.Printf("arg %s\n", a)
	}
	fmt.Printf("env %s\n", strings.Join(os.Environ(), " "))
	fmt.Printf("pgrp-is-self %v\n", syscall.Getpgrp() == os.Getpid())
	ch := os.NewFile(3, "channel")
	if _, err := ch.Write([]byte("from the VMM\n")); err != nil {
		fmt.Printf("channel error %v\n", err)
	}
	fmt.Print("a last line without newline")
	fmt.Fprintln(os.Stderr, "fake-qemu-9.1: first message")
	fmt.Fprintln(os.Stderr, "fake-qemu-9.1: giving up")
	os.Exit(3)
}

// fakeQEMUSleep is a QEMU 9.1.2 without seccomp whose VM runs until it is
// killed.
func fakeQEMUSleep() {
	switch args := os.Args[1:]; {
	case slices.Equal(args, []string{"--version"}):
		fmt.Println("QEMU emulator version 9.1.2 (fake)")
		os.Exit(0)
	case len(args) > 0 && args[0] == "-sandbox":
		os.Exit(1)
	}
	time.Sleep(time.Hour)
	os.Exit(0)
}

// helperMain launches a VM whose guest waits for a reply that never
// comes, prints QEMU's pid and blocks until it is killed.
func helperMain() {
	host, guest := socketPair()
	defer host.Close()
	v, err := Launcher{}.Start(context.Background(), vmm.Spec{
		Kernel: os.Getenv("VMMTEST_KERNEL"), Initrd: os.Getenv("VMMTEST_INITRD"),
		Cmdline: "console=ttyS0 panic=-1 vmmtest.port=p0", Accel: vmm.AccelTCG, MemoryMiB: 256,
		Channels: []vmm.Channel{{Name: "p0", File: guest}},
	})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", v.Pid())
	select {}
}

func socketPair() (host, guest *os.File) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	return os.NewFile(uintptr(fds[0]), "host-end"), os.NewFile(uintptr(fds[1]), "guest-end")
}

// hostConn turns the host end into a net.Conn (deadlines).
func hostConn(t *testing.T, f *os.File) net.Conn {
	t.Helper()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// testImage is a kernel and initramfs for the real-QEMU tests, in a
// directory whose name has a comma (QEMU takes -kernel and -initrd whole).
type testImage struct{ kernel, initrd string }

func newTestImage(t *testing.T) testImage {
	t.Helper()
	kernel := requireKernel(t)
	requireQEMU(t)
	init, err := os.ReadFile(buildGuestInit(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "boot,dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(dir, "vmlinuz,6.12")
	if err := os.Symlink(kernel, k); err != nil {
		t.Fatal(err)
	}
	return testImage{kernel: k, initrd: writeInitramfs(t, dir, "initrd,test.cpio", init)}
}

func (im testImage) spec(port string, ch *os.File, console *lines) vmm.Spec {
	s := vmm.Spec{
		Kernel: im.kernel, Initrd: im.initrd,
		Cmdline:   "console=ttyS0 loglevel=6 panic=-1 vmmtest.port=" + port,
		Accel:     vmm.AccelTCG,
		MemoryMiB: 256,
		Channels:  []vmm.Channel{{Name: port, File: ch}},
	}
	if console != nil {
		s.Console = console
	}
	return s
}

// procGone reports whether pid no longer runs QEMU (gone, or a zombie).
func procGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	comm := string(stat[strings.IndexByte(string(stat), '(')+1 : i])
	return stat[i+2] == 'Z' || !strings.HasPrefix(comm, "qemu")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if procGone(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("QEMU (pid %d) still runs", pid)
}

// TestBootTCG boots the Debian kernel with the test /init under TCG: the
// guest finds its port by name (with a comma, escaped in the argv), talks
// to the host over the inherited socket and powers off.
func TestBootTCG(t *testing.T) {
	im := newTestImage(t)
	t.Setenv("ENARX_TEST_SECRET", "must-not-reach-qemu")
	host, guest := socketPair()
	conn := hostConn(t, host)
	var console lines
	spec := im.spec("vmmtest,ctl", guest, &console)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Start from a goroutine locked to its thread that then returns, which
	// ends the thread: QEMU's parent-death signal must not fire.
	var v vmm.VM
	var err error
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		v, err = Launcher{}.Start(ctx, spec)
		close(started)
	}()
	<-started
	if err != nil {
		t.Fatal(err)
	}
	pid := v.Pid()
	if _, werr := guest.Write([]byte("x")); !errors.Is(werr, os.ErrClosed) {
		t.Errorf("the guest end is still open in enarx after Start (write: %v)", werr)
	}

	// Start returns once the exec has closed the status pipe, which is
	// before the kernel has set up the new image's environment: until then
	// /proc/PID/environ reads empty.
	var env []byte
	for deadline := time.Now().Add(10 * time.Second); len(env) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if env, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Split(strings.TrimRight(string(env), "\x00"), "\x00"); !slices.Equal(got, minimalEnv()) {
		t.Errorf("QEMU's environment = %q, want %q", got, minimalEnv())
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("QEMU's process group = %d (%v), want its own (%d)", pgid, err, pid)
	}

	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the guest's line: %v (console:\n%s)", err, console.String())
	}
	if line != "hello from the guest\n" {
		t.Errorf("guest wrote %q", line)
	}
	info, err := Probe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Sandbox {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(status), "Seccomp:\t2") {
			t.Errorf("QEMU runs without its seccomp filter:\n%s", status)
		}
	}
	if _, err := conn.Write([]byte("PONG\n")); err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(); err != nil {
		t.Fatalf("Wait: %v\nconsole:\n%s", err, console.String())
	}
	out := console.String()
	for _, want := range []string{"Linux version 6.12", `vmmtest: port "vmmtest,ctl" is /dev/vport`, "vmmtest: reply PONG\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	for _, l := range console.all() {
		if strings.Count(l, "\n") != 1 || !strings.HasSuffix(l, "\n") || strings.Contains(l, "\r") {
			t.Errorf("console write %q is not one line", l)
			break
		}
	}
	if v.Kill() != nil {
		t.Error("Kill after exit failed")
	}
	if !procGone(pid) {
		t.Error("QEMU still runs after Wait")
	}
}

// TestGarbageKernel: QEMU refuses a kernel that is not one, with its
// message in the error, instead of hanging.
func TestGarbageKernel(t *testing.T) {
	im := newTestImage(t)
	garbage := filepath.Join(t.TempDir(), "vmlinuz")
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(garbage, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, guest := socketPair()
	spec := im.spec("p0", guest, nil)
	spec.Kernel = garbage
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := Launcher{}.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	err = v.Wait()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Wait = %v (context: %v), want QEMU's refusal", err, ctx.Err())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "qemu-system-x86_64 exited with status 1: ") || !strings.Contains(err.Error(), "kernel") {
		t.Errorf("Wait = %v, want exit status 1 and QEMU's message about the kernel", err)
	}
	t.Logf("garbage kernel: %v", err)
}

// TestKillAndCancel: Kill and the Start context each end a running VM.
func TestKillAndCancel(t *testing.T) {
	im := newTestImage(t)
	t.Run("Kill", func(t *testing.T) {
		host, guest := socketPair()
		defer host.Close()
		v, err := Launcher{}.Start(context.Background(), im.spec("p0", guest, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := v.Wait(); !errors.Is(err, vmm.ErrKilled) {
			t.Errorf("Wait after Kill = %v", err)
		}
		if err := v.Kill(); err != nil {
			t.Errorf("second Kill = %v", err)
		}
		if err := v.Wait(); !errors.Is(err, vmm.ErrKilled) {
			t.Errorf("second Wait = %v", err)
		}
		waitGone(t, v.Pid())
	})
	t.Run("Cancel", func(t *testing.T) {
		host, guest := socketPair()
		defer host.Close()
		ctx, cancel := context.WithCancel(context.Background())
		v, err := Launcher{}.Start(ctx, im.spec("p0", guest, nil))
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := v.Wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel = %v", err)
		}
		waitGone(t, v.Pid())
	})
}

// TestParentDeathKillsQEMU: when the process that started QEMU dies by
// SIGKILL (no chance to clean up), QEMU dies too.
func TestParentDeathKillsQEMU(t *testing.T) {
	im := newTestImage(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VMMTEST_HELPER=1", "VMMTEST_KERNEL="+im.kernel, "VMMTEST_INITRD="+im.initrd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pidText, ok := strings.CutPrefix(strings.TrimSpace(line), "pid ")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil {
		t.Fatalf("helper said %q", line)
	}
	if procGone(pid) {
		t.Fatalf("QEMU (pid %d) is not running before the helper dies", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, pid)
}

// TestThreadExitKeepsQEMU: QEMU's parent-death signal follows the thread
// that forked it, and Go ends a thread whenever a goroutine that locked it
// (runtime.LockOSThread: the sandbox backend, the shim, any library)
// returns locked. Such goroutines, on whatever threads the scheduler gives
// them, must not kill a running VM.
func TestThreadExitKeepsQEMU(t *testing.T) {
	kernel, initrd, _ := testFiles(t)
	host, guest := socketPair()
	defer host.Close()
	v, err := Launcher{Binary: fakeQEMU(t, "fake-qemu-sleep")}.Start(context.Background(), vmm.Spec{
		Kernel: kernel, Initrd: initrd, Accel: vmm.AccelTCG,
		Channels: []vmm.Channel{{Name: "enarx.ctl", File: guest}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		v.Kill()
		v.Wait()
	}()
	exited := make(chan struct{})
	go func() { v.Wait(); close(exited) }()
	for i := 0; i < 100; i++ {
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			// Returns locked: Go ends this thread.
		}()
		<-locked
		runtime.Gosched()
	}
	// The signal is sent as the threads exit; give the fake QEMU time to
	// die of it (it would within milliseconds).
	select {
	case <-exited:
		t.Fatalf("QEMU ended when threads of the launching process exited: %v", v.Wait())
	case <-time.After(2 * time.Second):
	}
}

// kvmRoot is a fake host root whose /dev/kvm opens read-write.
type kvmRoot struct{ fstest.MapFS }

func (kvmRoot) CheckReadWrite(string) error { return nil }

func newKVMRoot() kvmRoot {
	return kvmRoot{fstest.MapFS{"dev/kvm": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}}
}

func fakeQEMU(t *testing.T, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func testFiles(t *testing.T) (kernel, initrd, firmware string) {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"vmlinuz", "initrd.img", "OVMF.amdsev.fd"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("not empty"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img"), filepath.Join(dir, "OVMF.amdsev.fd")
}

// TestStartWithFakeQEMU runs Start's whole path for an SEV-SNP spec against
// a fake QEMU 9.1 without seccomp: the argv is ArgsWith's without
// -sandbox, the environment is minimal, QEMU has its own process group,
// the channel is descriptor 3, stdout is the console line by line, and
// the exit status comes with the last stderr lines, and the missing
// sandbox is logged as a warning.
func TestStartWithFakeQEMU(t *testing.T) {
	kernel, initrd, fw := testFiles(t)
	host, guest := socketPair()
	conn := hostConn(t, host)
	var console lines
	spec := vmm.Spec{
		Kernel: kernel, Initrd: initrd, Firmware: fw, Cmdline: "console=ttyS0",
		Accel: vmm.AccelKVM, TEE: vmm.TEESNP, SNP: &vmm.SNP{KernelHashes: true},
		Channels: []vmm.Channel{{Name: "enarx.ctl", File: guest}}, Console: &console,
	}
	want, err := ArgsWith(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logged lines
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, err := Launcher{Binary: fakeQEMU(t, "fake-qemu-9.1"), Root: newKVMRoot(), Logger: log}.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// A QEMU without seccomp is said at warning level, not only in the
	// debug log's argv.
	if got := logged.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "no seccomp sandbox") {
		t.Errorf("warnings logged = %q, want one about the missing seccomp sandbox", got)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "from the VMM\n" {
		t.Errorf("channel read %q, %v", line, err)
	}
	err = v.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if got, wantMsg := err.Error(), "fake-qemu-9.1 exited with status 3: fake-qemu-9.1: first message\nfake-qemu-9.1: giving up"; got != wantMsg {
		t.Errorf("error = %q, want %q", got, wantMsg)
	}
	var gotArgs []string
	var rest []string
	for _, l := range console.all() {
		if a, ok := strings.CutPrefix(l, "arg "); ok {
			gotArgs = append(gotArgs, strings.TrimSuffix(a, "\n"))
		} else {
			rest = append(rest, l)
		}
	}
	if !slices.Equal(gotArgs, want) {
		t.Errorf("argv:\n got %q\nwant %q", gotArgs, want)
	}
	wantRest := []string{"env " + strings.Join(minimalEnv(), " ") + "\n", "pgrp-is-self true\n", "a last line without newline\n"}
	if !slices.Equal(rest, wantRest) {
		t.Errorf("console:\n got %q\nwant %q", rest, wantRest)
	}
}

func TestStartRefuses(t *testing.T) {
	kernel, initrd, fw := testFiles(t)
	plain := func() vmm.Spec {
		_, guest := socketPair()
		return vmm.Spec{Kernel: kernel, Initrd: initrd, Accel: vmm.AccelTCG,
			Channels: []vmm.Channel{{Name: "enarx.ctl", File: guest}}}
	}
	t.Run("MissingBinary", func(t *testing.T) {
		_, err := Launcher{Binary: filepath.Join(t.TempDir(), "qemu-system-x86_64")}.Start(context.Background(), plain())
		if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
			t.Errorf("err = %v", err)
		}
		t.Setenv("PATH", t.TempDir())
		t.Setenv(EnvQEMU, "")
		_, err = Launcher{}.Start(context.Background(), plain())
		if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("NoKVM", func(t *testing.T) {
		s := plain()
		s.Accel = vmm.AccelKVM
		_, err := Launcher{Binary: fakeQEMU(t, "fake-qemu-9.1"), Root: fstest.MapFS{}}.Start(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "KVM acceleration: /dev/kvm is missing") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("TDXOnQEMU9.1", func(t *testing.T) {
		s := plain()
		s.Accel, s.TEE, s.Firmware = vmm.AccelKVM, vmm.TEETDX, fw
		_, err := Launcher{Binary: fakeQEMU(t, "fake-qemu-9.1"), Root: newKVMRoot()}.Start(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "TDX VMs need QEMU 10.1 or newer;") || !strings.Contains(err.Error(), "is QEMU 9.1.2") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("SNPOnInstalledQEMU", func(t *testing.T) {
		bin := requireQEMU(t)
		info, err := Probe(context.Background(), bin)
		if err != nil {
			t.Fatal(err)
		}
		if info.SupportsSNP() {
			t.Skipf("QEMU %s supports SEV-SNP", info.Version)
		}
		s := plain()
		s.Accel, s.TEE, s.Firmware = vmm.AccelKVM, vmm.TEESNP, fw
		_, err = Launcher{Root: newKVMRoot()}.Start(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "SEV-SNP VMs need QEMU 9.1 or newer; "+bin+" is QEMU "+info.Version.String()) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("InvalidSpec", func(t *testing.T) {
		s := plain()
		s.TEE, s.Firmware = vmm.TEESNP, fw
		_, err := Launcher{}.Start(context.Background(), s)
		if !errors.Is(err, vmm.ErrInvalidSpec) || !strings.Contains(err.Error(), "needs KVM") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("NotASocket", func(t *testing.T) {
		s := plain()
		f, err := os.Open(kernel)
		if err != nil {
			t.Fatal(err)
		}
		s.Channels[0].File = f
		_, err = Launcher{Binary: fakeQEMU(t, "fake-qemu-9.1")}.Start(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("ClosesChannels", func(t *testing.T) {
		s := plain()
		s.Kernel = filepath.Join(t.TempDir(), "missing")
		Launcher{}.Start(context.Background(), s)
		if _, err := s.Channels[0].File.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
			t.Errorf("channel file after a failed Start: write = %v, want closed", err)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := (Launcher{}).Start(ctx, plain()); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}
