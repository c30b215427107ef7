package shim

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rlimitResources are the resource names an OCI spec's Process.Rlimits may
// use on Linux (runtime-spec config.md: the RLIMIT_* names of
// getrlimit(2)).
var rlimitResources = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// rlimit is one of the spec's resource limits.
type rlimit struct {
	name     string
	resource int
	unix.Rlimit
}

// rlimitsOf checks and returns the spec's Process.Rlimits, which the keep
// host gets as runc gives them to a container's process: an unknown
// resource, one named twice, or a soft limit above its hard one fails the
// container's create with the reason (runc refuses them too, later).
func rlimitsOf(spec *specs.Spec) ([]rlimit, error) {
	if spec.Process == nil {
		return nil, nil
	}
	var out []rlimit
	seen := make(map[string]bool)
	for _, r := range spec.Process.Rlimits {
		res, ok := rlimitResources[r.Type]
		if !ok {
			return nil, fmt.Errorf("the OCI spec's process.rlimits names %q, which is no Linux resource limit (RLIMIT_NOFILE, RLIMIT_NPROC, ...)", r.Type)
		}
		if seen[r.Type] {
			return nil, fmt.Errorf("the OCI spec's process.rlimits names %s twice", r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return nil, fmt.Errorf("the OCI spec's process.rlimits gives %s a soft limit %d above its hard limit %d", r.Type, r.Soft, r.Hard)
		}
		out = append(out, rlimit{name: r.Type, resource: res, Rlimit: unix.Rlimit{Cur: r.Soft, Max: r.Hard}})
	}
	return out, nil
}

// setRlimits gives the keep host pid the spec's resource limits rl, as
// runc gives a container's process, before the keep host has its launch
// message, so before the Keep (whose processes inherit them, each backend
// lowering them further: docs/sandbox.md) starts. Without them a Keep had
// the shim's limits, containerd's (typically a million fds), not the
// 1024 containerd's default spec gives every container.
//
// Raising a hard limit above the shim's own needs CAP_SYS_RESOURCE. A shim
// without it leaves the keep host at the shim's hard limit, with a soft
// limit no higher, and logs it: the Keep gets less than the pod asked,
// never more than the shim has (the same as setOOMScoreAdj).
func setRlimits(ctx context.Context, pid int, rl []rlimit) error {
	for _, r := range rl {
		lim := r.Rlimit
		err := unix.Prlimit(pid, r.resource, &lim, nil)
		if errors.Is(err, unix.EPERM) {
			var cur unix.Rlimit
			if gerr := unix.Prlimit(pid, r.resource, nil, &cur); gerr == nil && lim.Max > cur.Max {
				lower := unix.Rlimit{Cur: min(lim.Cur, cur.Max), Max: cur.Max}
				if err = unix.Prlimit(pid, r.resource, &lower, nil); err == nil {
					log.G(ctx).Warnf("the keep host's %s is %d:%d, not the OCI spec's %d:%d: raising a hard limit above the shim's needs CAP_SYS_RESOURCE, which the shim lacks", r.name, lower.Cur, lower.Max, lim.Cur, lim.Max)
					continue
				}
			}
		}
		if err != nil {
			return fmt.Errorf("setting the keep host's %s to the OCI spec's %d:%d: %w", r.name, lim.Cur, lim.Max, err)
		}
	}
	return nil
}
