package sandbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// probeNamespaces checks that the kernel lets this process create a child
// in all of the Keep's namespaces. It starts no program: it asks to execute
// a path that does not exist, so ENOENT means the clone (and user id
// mapping) succeeded and only the exec failed.
func probeNamespaces() error { return probeClone(nsFlags) }

func probeClone(flags uintptr) error {
	attr := &syscall.SysProcAttr{Cloneflags: flags}
	if flags&syscall.CLONE_NEWUSER != 0 {
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: keepHostID(os.Geteuid()), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: keepHostID(os.Getegid()), Size: 1}}
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	_, err := syscall.ForkExec("/nonexistent/enarx-namespace-probe", []string{"probe"}, &syscall.ProcAttr{Sys: attr})
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err == nil {
		return errors.New("probe unexpectedly started a process")
	}
	return err
}

// Names of capabilities in Probe's report.
const (
	capSeccomp  = "Seccomp filters"
	capLandlock = "Landlock"
)

// Capability is one thing the sandbox backend needs from the kernel.
type Capability struct {
	Name string
	OK   bool
	Info string
}

// Probe checks what the sandbox backend can have on this machine: seccomp,
// each namespace, Landlock. The sandbox is available when seccomp works
// (the layer it cannot do without); the rest are reported.
func Probe() []Capability {
	var caps []Capability
	add := func(name string, err error, info string) {
		c := Capability{Name: name, OK: err == nil, Info: info}
		if err != nil {
			c.Info = err.Error()
		}
		caps = append(caps, c)
	}
	switch {
	case !seccompSupported():
		add(capSeccomp, errors.New("not supported by the kernel (CONFIG_SECCOMP_FILTER)"), "")
	case !haveSeccompProgram():
		add(capSeccomp, errNoSeccompProgram(), "")
	default:
		add(capSeccomp, nil, "")
	}
	for _, ns := range []struct {
		name string
		flag uintptr
	}{
		{"User namespaces", syscall.CLONE_NEWUSER},
		{"PID namespaces", syscall.CLONE_NEWPID},
		{"Mount namespaces", syscall.CLONE_NEWNS},
		{"Network namespaces", syscall.CLONE_NEWNET},
		{"IPC namespaces", syscall.CLONE_NEWIPC},
		{"UTS namespaces", syscall.CLONE_NEWUTS},
	} {
		f := ns.flag
		if f != syscall.CLONE_NEWUSER && os.Geteuid() != 0 {
			f |= syscall.CLONE_NEWUSER // unprivileged: the others need a user namespace
		}
		add(ns.name, probeClone(f), "")
	}
	// As the Keep's Landlock layer: in force only with network rules.
	switch v, err := landlockABI(); {
	case err != nil:
		add(capLandlock, fmt.Errorf("not available: %v", err), "")
	case v < 4:
		add(capLandlock, fmt.Errorf("ABI %d restricts the file system only; TCP rules need ABI 4 (Linux 6.7)", v), "")
	default:
		add(capLandlock, nil, fmt.Sprintf("ABI %d", v))
	}
	return caps
}
