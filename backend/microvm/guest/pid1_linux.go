package guest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/evidence/snp"
	"github.com/enarx-go/enarx/evidence/tdx"
)

// PortName is the virtio-serial port of the channel to the host.
const PortName = "enarx.ctl"

// ModulesDir holds the image's kernel modules and their load order.
const ModulesDir = "/modules"

// portWait bounds the search for the channel's port.
const portWait = 30 * time.Second

// Main is PID 1 of a microVM Keep. It never returns: whatever happens it
// ends by powering the VM off (the host then reads the exit status it was
// sent, or, without one, reports that the Keep failed).
func Main() {
	tbErr := limitTraceback()
	defer poweroff()
	tee := "" // not known yet
	defer recoverToConsole(&tee)
	var early earlyLog
	if tbErr != nil {
		early.add(slog.LevelWarn, "limiting crash output", "err", tbErr.Error())
	}
	if err := mountAll(); err != nil {
		early.add(slog.LevelError, "preparing the guest", "err", err.Error())
	}
	start := uptime()
	loaded := loadModules(ModulesDir, &early)
	modulesDone := uptime()
	lockKernel("/", &early)
	raiseFileLimit()
	tee = Detect("/")
	if tee != "none" {
		if err := quietCrashOutput("/dev/null"); err != nil {
			early.add(slog.LevelWarn, "keeping crash output off the console", "err", err.Error())
		}
	}
	if tee != "none" && !attestationDevice("/", tee) {
		early.add(slog.LevelWarn, "this Keep runs in a TEE whose attestation driver did not start: it will produce no evidence", "tee", tee)
	}
	port, err := openPort("/", PortName, portWait)
	if err != nil {
		console("enarx keep: %v", err)
		return
	}
	early.add(slog.LevelDebug, "keep guest ready", "tee", tee, "modules", strings.Join(loaded, ","),
		"init_at", start, "modules_loaded_at", modulesDone, "port_open_at", uptime())
	Serve(context.Background(), port, Env{TEE: tee, Evidence: evidenceFor, TempDir: "/tmp", Early: early.records})
}

// limitTraceback keeps goroutine stacks off the console, which the host
// reads: a Go traceback prints the argument words of every frame in hex,
// which can be words of keys. With GOTRACEBACK=none, an unhandled panic
// or a fatal error of the program (a concurrent map write, a bad unlock)
// prints its message and no stack. The runtime takes GOTRACEBACK from the
// environment when the process starts, and debug.SetTraceback can never
// set less than that (unset counts as "single", one stack), so /init
// without it execs itself again, still PID 1, with GOTRACEBACK=none
// (whatever the kernel command line put in init's environment) and
// returns only if that fails. There is no switch for more: the log level
// is the host's word. The runtime's own fatal errors (out of memory, a
// stack overflow, memory corruption) still print full tracebacks: Go
// forces them.
func limitTraceback() error {
	if os.Getenv("GOTRACEBACK") == "none" {
		return nil
	}
	env := []string{"GOTRACEBACK=none"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOTRACEBACK=") {
			env = append(env, kv)
		}
	}
	err := unix.Exec(os.Args[0], os.Args, env)
	return fmt.Errorf("executing %s again with GOTRACEBACK=none (a crash of the Keep will print goroutine stacks on the console): %w", os.Args[0], err)
}

// quietCrashOutput points /init's standard output and error, the console
// the kernel gave it, at null (/dev/null). Nothing of the Keep writes
// there on purpose (its logs go over the channel, console() opens the
// console itself), only the Go runtime as the process dies: the message of
// an unhandled panic or fatal error, and, for the runtime's own fatal
// errors (out of memory, a stack overflow, memory corruption), goroutine
// stacks whatever GOTRACEBACK says, whose argument words can be words of
// keys. A Keep in a TEE calls it: its memory is the one thing its host
// cannot read, so nothing of it may reach the console. The host then sees
// only the kernel's panic, "Attempted to kill init! exitcode=0x00000200"
// (the runtime's exit status 2), and says what that means. A Keep without
// a TEE keeps the messages: its host reads its memory anyway.
func quietCrashOutput(null string) error {
	f, err := os.OpenFile(null, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("redirecting fd %d to %s: %w", fd, null, err)
		}
	}
	return nil
}

// uptime is the guest's /proc/uptime, for boot timings in debug logs.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

// earlyLog keeps log records until the channel exists.
type earlyLog struct{ records []channel.Log }

func (e *earlyLog) add(l slog.Level, msg string, attrs ...string) {
	e.records = append(e.records, channel.Log{Level: int(l), Msg: msg, Attrs: attrs})
}

// recoverToConsole, deferred by Main, ends a panic of Main's goroutine
// (the workload's run included) with one line on the console. The console
// is the host's to read: a Keep in a TEE (*tee, once Detect found it, is
// neither "" nor "none") says that it failed but not the panic's value,
// which can carry the workload's data or words of keys, as it shows
// nothing of a crash it does not recover (quietCrashOutput).
func recoverToConsole(tee *string) {
	p := recover()
	if p == nil {
		return
	}
	if *tee != "" && *tee != "none" {
		console("enarx keep: internal error (its message is not shown: this Keep runs in a TEE, tee=%s)", *tee)
		return
	}
	console("enarx keep: internal error: %v", p)
}

// consolePath is the kernel console (a test points it elsewhere).
var consolePath = "/dev/console"

// console writes to the kernel console: debug output the host may read
// (it emulates the serial port), so never anything secret.
func console(format string, args ...any) {
	f, err := os.OpenFile(consolePath, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	fmt.Fprintf(f, format+"\n", args...)
	f.Close()
}

func poweroff() {
	unix.Sync()
	for {
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		time.Sleep(time.Second)
	}
}

// mount is one file system mountAll mounts.
type mount struct {
	src, dst, fstype string
	flags            uintptr
	data             string
}

// mounts are the guest's file systems. None holds anything to execute (the
// only executable is /init, in the initramfs root), so every one is
// noexec and nosuid, and all but /dev nodev. /tmp holds the compilation
// cache, whose files the engines only read: wazero copies the machine
// code into anonymous memory it then makes executable, and wasmtime (not
// in the guest's pure Go build) would map a cache file only from a mount
// that is not noexec (execMount in keep/internal/engine), else copy it.
var mounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0700"},
}

func mountAll() error {
	var errs []error
	for _, m := range mounts {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mounting %s: %w", m.dst, err))
		}
	}
	return errors.Join(errs...)
}

// loadModules loads the image's modules in the order the image builder
// computed (dependencies first). sev-guest and tdx-guest refuse to load
// outside their TEE (ENODEV): that is expected and is how the Keep finds
// out which TEE it is in. It returns the names of the modules loaded.
func loadModules(dir string, early *earlyLog) []string {
	f, err := os.Open(filepath.Join(dir, "order"))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			early.add(slog.LevelWarn, "reading the module order", "err", err.Error())
		}
		return nil
	}
	defer f.Close()
	var loaded []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		err := loadModule(filepath.Join(dir, name))
		switch {
		case err == nil:
			loaded = append(loaded, moduleName(name))
			if moduleName(name) == "configfs" {
				os.MkdirAll("/sys/kernel/config", 0o755)
				unix.Mount("configfs", "/sys/kernel/config", "configfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
			}
		case errors.Is(err, unix.EEXIST):
		case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
			early.add(slog.LevelDebug, "module not for this machine", "module", name)
		default:
			early.add(slog.LevelWarn, "loading a kernel module", "module", name, "err", err.Error())
		}
	}
	return loaded
}

func moduleName(file string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		file = strings.TrimSuffix(file, ext)
	}
	return strings.TrimSuffix(file, ".ko")
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	return unix.FinitModule(int(f.Fd()), "", flags)
}

// raiseFileLimit lets the workload hold as many descriptors as the WASI
// table allows (each channel stream uses two eventfds).
func raiseFileLimit() {
	lim := unix.Rlimit{Cur: 65536, Max: 65536}
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
}

// lockedSysctls are one-way switches set once the image's modules are
// loaded: from then on nothing in the guest, whoever asks, can load kernel
// code the launch measurement does not cover. modules_disabled stops module
// loading; kexec_load_disabled stops kexec_load and kexec_file_load, with
// which root in the guest could replace the measured kernel by any other
// while the TEE's measurement (SNP MEASUREMENT, TDX MRTD and RTMRs) still
// names the booted image, and then ask the hardware for reports with
// report data of its choice.
var lockedSysctls = []struct{ file, what string }{
	{"proc/sys/kernel/modules_disabled", "disabling module loading"},
	{"proc/sys/kernel/kexec_load_disabled", "disabling kexec"},
}

// lockKernel sets lockedSysctls under root ("/" in a Keep). A kernel built
// without modules or kexec has no such file: nothing to disable there.
func lockKernel(root string, early *earlyLog) {
	for _, s := range lockedSysctls {
		if err := os.WriteFile(filepath.Join(root, s.file), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			early.add(slog.LevelWarn, s.what, "err", err.Error())
		}
	}
}

// Detect reports the TEE the guest runs in: "snp", "tdx" or "none". root is
// the file system root ("/" in a Keep).
//
// The attestation drivers' devices (/dev/sev-guest, /dev/tdx_guest) are not
// enough: their drivers set up shared memory with the host when they start,
// and a host that refuses (a TDX host can fail the MapGPA call for
// tdx-guest's quote buffer) leaves a Keep that does run in a TEE without
// the device. Taken for "none", that Keep would trust its host (it would
// run the host's compilation cache, machine code, inside the TEE). So the
// kernel's own finding counts too, which the host cannot take back: the
// sev-guest platform device the x86 SEV code registers in every SNP guest
// (/sys/devices/platform/sev-guest, whether or not its driver binds), and
// the tdx_guest CPU flag that the TDX module's CPUID leaf sets in every TD.
func Detect(root string) string {
	for _, tee := range []string{"snp", "tdx"} {
		if attestationDevice(root, tee) {
			return tee
		}
	}
	if st, err := os.Stat(filepath.Join(root, "sys/devices/platform/sev-guest")); err == nil && st.IsDir() {
		return "snp"
	}
	if cpuFlag(filepath.Join(root, "proc/cpuinfo"), "tdx_guest") {
		return "tdx"
	}
	return "none"
}

// attestationDevice reports whether the attestation driver of tee made its
// character device under root.
func attestationDevice(root, tee string) bool {
	dev := map[string]string{"snp": "dev/sev-guest", "tdx": "dev/tdx_guest"}[tee]
	if dev == "" {
		return false
	}
	st, err := os.Stat(filepath.Join(root, dev))
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// cpuFlag reports whether the first "flags" line of a /proc/cpuinfo lists
// flag.
func cpuFlag(cpuinfo, flag string) bool {
	f, err := os.Open(cpuinfo)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		for _, fl := range strings.Fields(value) {
			if fl == flag {
				return true
			}
		}
		return false
	}
	return false
}

// openPort finds the virtio-serial port called name (its name is in
// /sys/class/virtio-ports/vportNpM/name; devtmpfs makes /dev/vportNpM) and
// opens it. Ports can appear shortly after init starts, so it retries
// until timeout.
func openPort(root, name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		dev, err := findPort(root, name)
		if err == nil {
			return os.OpenFile(filepath.Join(root, "dev", dev), os.O_RDWR, 0)
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findPort(root, name string) (string, error) {
	dir := filepath.Join(root, "sys/class/virtio-ports")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("no virtio-serial ports (%v): is the VM started with the channel device?", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q among %d ports", name, len(ents))
}

// evidenceFor makes the evidence provider of the Keep's TEE. Collateral
// from the host (VCEK, CRLs, TDX collateral) is only transported: the
// Steward verifies it.
func evidenceFor(tee, collateralDir string) (attest.EvidenceProvider, error) {
	switch tee {
	case "snp":
		return &snp.Provider{Cache: &snp.Cache{Dir: collateralDir}}, nil
	case "tdx":
		return &tdx.Provider{Cache: &tdx.Cache{Dir: collateralDir}}, nil
	}
	return nil, nil
}
