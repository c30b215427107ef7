package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/shutdown"
	"github.com/containerd/containerd/plugin"
	cshim "github.com/containerd/containerd/runtime/v2/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// RuntimeName is the containerd runtime type the shim implements; the
// binary containerd looks for is containerd-shim-enarx-v1.
const RuntimeName = "io.containerd.enarx.v1"

// Run is the shim binary's main: containerd's shim library parses the
// command line (start, delete, or serve) and runs the manager or the task
// service. The caller handles the keep host (IsKeepHost) and the sandbox
// backend's Keep processes first.
func Run() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugin.EventPlugin, plugin.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugin.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugin.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			return newService(ic.Context, pp.(cshim.Publisher), ss.(shutdown.Service)), nil
		},
	})
	cshim.RunManager(context.Background(), manager{})
}

// manager starts the long-lived shim process and cleans up after one that
// died (containerd's "delete" action).
type manager struct{}

func (manager) Name() string { return RuntimeName }

// Start starts the shim that serves one task and returns its ttrpc address,
// as containerd's runc shim does (without grouping: one shim per
// container). The working directory is the task's bundle.
func (manager) Start(ctx context.Context, id string, opts cshim.StartOpts) (_ string, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	address, err := cshim.SocketAddress(ctx, opts.Address, id)
	if err != nil {
		return "", err
	}
	socket, err := cshim.NewSocket(address)
	if err != nil {
		if !cshim.SocketEaddrinuse(err) {
			return "", fmt.Errorf("creating the shim socket: %w", err)
		}
		if cshim.CanConnect(address) {
			return "", fmt.Errorf("a shim already serves task %s at %s", id, address)
		}
		if err := cshim.RemoveSocket(address); err != nil {
			return "", fmt.Errorf("removing a stale shim socket: %w", err)
		}
		if socket, err = cshim.NewSocket(address); err != nil {
			return "", fmt.Errorf("creating the shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			socket.Close()
			_ = cshim.RemoveSocket(address)
		}
	}()
	if err := cshim.WriteAddress("address", address); err != nil {
		return "", err
	}
	f, err := socket.File()
	if err != nil {
		return "", err
	}
	defer f.Close()
	args := []string{"-namespace", ns, "-id", id, "-address", opts.Address}
	if opts.Debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Env = os.Environ()
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting the shim: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaped; the shim outlives this process
	if err := cshim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("adjusting the shim's OOM score: %w", err)
	}
	return address, nil
}

// Stop is containerd's cleanup after a shim that died (or a failed
// start): the task's keep host is killed (it normally died with the shim,
// by its parent-death signal) and waited for, the image mount and the
// shim's socket are removed. The working directory is the bundle.
func (manager) Stop(ctx context.Context, id string) (cshim.StopStatus, error) {
	bundle, err := os.Getwd()
	if err != nil {
		return cshim.StopStatus{}, err
	}
	pid := killRecorded(ctx, bundle)
	if spec, err := readSpec(bundle); err == nil {
		if err := loadCgroup(spec).delete(cgroupWait); err != nil {
			log.G(ctx).WithError(err).Warn("removing the task's cgroup")
		}
	}
	if addr, err := cshim.ReadAddress(filepath.Join(bundle, "address")); err == nil {
		_ = cshim.RemoveSocket(addr)
	}
	cleanupBundle(bundle)
	return cshim.StopStatus{Pid: pid, ExitStatus: 128 + int(unix.SIGKILL), ExitedAt: time.Now()}, nil
}

// pidFile is where the shim records its keep host (pid and start time, so
// that a recycled pid is never killed).
const pidFile = "keep-host.pid"

func writePidFile(bundle string, pid int) error {
	st, err := startTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, pidFile), []byte(fmt.Sprintf("%d %d\n", pid, st)), 0o600)
}

// killRecorded kills the keep host recorded in bundle, if it is still the
// same process, waits up to 5 s for it to be gone, and returns its pid.
func killRecorded(ctx context.Context, bundle string) int {
	b, err := os.ReadFile(filepath.Join(bundle, pidFile))
	if err != nil {
		return 0
	}
	var pid int
	var st uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &st); err != nil || pid <= 0 {
		return 0
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		now, err := startTime(pid)
		if err != nil || now != st {
			return pid // gone (or the pid is another process's now)
		}
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			log.G(ctx).WithError(err).Warn("killing the keep host")
			return pid
		}
	}
	log.G(ctx).WithField("pid", pid).Warn("the keep host did not die within 5 s of SIGKILL")
	return pid
}

// startTime is field 22 of /proc/<pid>/stat (start time in clock ticks
// since boot); a zombie counts as gone.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("exited")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// cleanupBundle removes what the shim put in the bundle: the image mount
// (normally unmounted right after reading the module) and the pid file.
func cleanupBundle(bundle string) {
	_ = mount.UnmountAll(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH)
	_ = os.Remove(filepath.Join(bundle, pidFile))
}
