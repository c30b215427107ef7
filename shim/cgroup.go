package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/containerd/protobuf"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
)

// taskCgroup is the cgroup a task's keep host (and so its Keep) runs in,
// made as runc makes a container's from the OCI spec: Linux.CgroupsPath
// with Linux.Resources, so that the pod's limits (memory, CPU, pids, I/O)
// bound the Keep and containerd's and the kubelet's statistics see it.
//
// The spec's device rules are not applied: they are a Linux container's
// (deny all but a few nodes), while a Keep's backend needs its devices
// (/dev/kvm, /dev/sev, the guest attestation devices), and the workload
// never sees a device node.
type taskCgroup struct {
	v1   cgroup1.Cgroup
	v2   *cgroup2.Manager
	path string
}

// cgroupOf is the cgroup path the spec names ("" for none), with a systemd
// driver's "slice:prefix:name" expanded to its place in the hierarchy
// (the shim creates the directory itself; no systemd unit manages it).
func cgroupOf(spec *specs.Spec) (string, error) {
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return "", nil
	}
	p := spec.Linux.CgroupsPath
	if strings.HasPrefix(p, "/") {
		c := filepath.Clean(p)
		if c == "/" {
			// The hierarchy's root holds every process on the node, and
			// delete kills what is left in the task's cgroup.
			return "", fmt.Errorf("cgroup path %q is the root cgroup; a task needs a cgroup of its own", p)
		}
		return c, nil
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 || !strings.HasSuffix(parts[0], ".slice") || parts[2] == "" || strings.Contains(p, "/") {
		return "", fmt.Errorf("cgroup path %q is neither absolute nor systemd's slice:prefix:name", p)
	}
	slice, err := expandSlice(parts[0])
	if err != nil {
		return "", err
	}
	scope := parts[2] + ".scope"
	if parts[1] != "" {
		scope = parts[1] + "-" + scope
	}
	return filepath.Join(slice, scope), nil
}

// expandSlice turns a systemd slice name into its cgroup path: each
// dash-separated prefix is a parent slice ("a-b.slice" is
// /a.slice/a-b.slice), as systemd and runc's systemd driver lay them out.
func expandSlice(slice string) (string, error) {
	if slice == "-.slice" {
		return "/", nil // the root slice
	}
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || strings.Contains(name, "--") {
		return "", fmt.Errorf("invalid systemd slice %q", slice)
	}
	path, prefix := "/", ""
	for _, comp := range strings.Split(name, "-") {
		prefix += comp
		path = filepath.Join(path, prefix+".slice")
		prefix += "-"
	}
	return path, nil
}

// newCgroup creates the task's cgroup (nil when the spec names none).
func newCgroup(spec *specs.Spec) (*taskCgroup, error) {
	path, err := cgroupOf(spec)
	if err != nil || path == "" {
		return nil, err
	}
	res := &specs.LinuxResources{}
	if spec.Linux.Resources != nil {
		r := *spec.Linux.Resources
		res = &r
	}
	res.Devices = nil // see taskCgroup
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, cgroup2.ToResources(res))
		if err != nil {
			return nil, fmt.Errorf("creating the task's cgroup %s: %w", path, err)
		}
		return &taskCgroup{v2: m, path: path}, nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), res)
	if err != nil {
		return nil, fmt.Errorf("creating the task's cgroup %s: %w", path, err)
	}
	return &taskCgroup{v1: cg, path: path}, nil
}

// loadCgroup opens the cgroup the spec names, for cleanup after a shim
// crash (nil when there is none).
func loadCgroup(spec *specs.Spec) *taskCgroup {
	path, err := cgroupOf(spec)
	if err != nil || path == "" {
		return nil
	}
	if cgroups.Mode() == cgroups.Unified {
		if m, err := cgroup2.Load(path); err == nil {
			return &taskCgroup{v2: m}
		}
		return nil
	}
	if cg, err := cgroup1.Load(cgroup1.StaticPath(path)); err == nil {
		return &taskCgroup{v1: cg}
	}
	return nil
}

func (c *taskCgroup) add(pid int) error {
	if c.v2 != nil {
		return c.v2.AddProc(uint64(pid))
	}
	return c.v1.AddProc(uint64(pid))
}

// watchOOM calls oom each time the kernel's OOM killer acts in the
// cgroup, until stop is closed, as containerd's runc shim reports it
// (TaskOOM, which the kubelet shows as the reason OOMKilled): on cgroup v2
// from memory.events' oom_kill count, on v1 from the memory controller's
// OOM eventfd (which also fires when the cgroup is removed: an event for a
// cgroup that is gone is none).
func (c *taskCgroup) watchOOM(stop <-chan struct{}, oom func()) error {
	if c.v2 != nil {
		ec, errc := c.v2.EventChan()
		go func() {
			var kills uint64
			for {
				select {
				case e := <-ec:
					if e.OOMKill > kills {
						kills = e.OOMKill
						oom()
					}
				case <-errc:
					return
				case <-stop:
					return
				}
			}
		}()
		return nil
	}
	fd, err := c.v1.OOMEventFD()
	if err != nil {
		return err
	}
	// Non-blocking, so that the runtime's poller serves the reads and
	// Close ends a pending one.
	if err := unix.SetNonblock(int(fd), true); err != nil {
		unix.Close(int(fd))
		return err
	}
	f := os.NewFile(fd, "oom-eventfd")
	go func() {
		<-stop
		f.Close()
	}()
	go func() {
		var b [8]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
			if c.v1.State() == cgroup1.Deleted {
				return
			}
			oom()
		}
	}()
	return nil
}

// stats are the cgroup's metrics in containerd's types (those the runc
// shim reports, which ctr and the kubelet decode).
func (c *taskCgroup) stats() (*anypb.Any, error) {
	var m any
	var err error
	if c.v2 != nil {
		m, err = c.v2.Stat()
	} else {
		m, err = c.v1.Stat(cgroup1.IgnoreNotExist)
	}
	if err != nil {
		return nil, err
	}
	a, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, err
	}
	return protobuf.FromAny(a), nil
}

// delete removes the cgroup. A task's processes are gone or going when it
// is called, but a dying one (a sandbox Keep ended by its parent-death
// signal, a zombie not yet reaped) still counts: whatever remains is
// killed, and the removal retried for up to wait.
func (c *taskCgroup) delete(wait time.Duration) error {
	if c == nil {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		var err error
		if c.v2 != nil {
			err = c.v2.Delete()
		} else {
			err = c.v1.Delete()
		}
		if err == nil || errors.Is(err, cgroup1.ErrCgroupDeleted) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		for _, pid := range c.procs() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procs lists the processes in the cgroup and below.
func (c *taskCgroup) procs() []int {
	var out []int
	if c.v2 != nil {
		ps, _ := c.v2.Procs(true)
		for _, p := range ps {
			out = append(out, int(p))
		}
		return out
	}
	subs := c.v1.Subsystems()
	if len(subs) == 0 {
		return nil
	}
	ps, _ := c.v1.Processes(subs[0].Name(), true)
	for _, p := range ps {
		out = append(out, p.Pid)
	}
	return out
}
