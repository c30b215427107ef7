package shim

import (
	"context"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestKeepHostRlimits: the keep host (and so the Keep, whose processes
// inherit them) gets the OCI spec's Process.Rlimits, as runc gives a
// container's process. It had the shim's instead: containerd's default
// spec gives every container 1024 fds, and a Keep had the shim's
// (containerd's, typically a million). The tasks are a pod sandbox's, their
// keep host this test binary (TestMain), as in TestKeepHostOOMScoreAdj.
func TestKeepHostRlimits(t *testing.T) {
	reapChildren(t)

	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if own.Max <= 200 {
		t.Skipf("this process's RLIMIT_NOFILE hard limit is %d: too low to lower", own.Max)
	}
	// Lowering needs no privilege.
	s := &service{ctx: context.Background(), events: make(chan any, 128)}
	err := createPause(t, s, "nofile", func(p *specs.Process) {
		p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
	})
	if err != nil {
		t.Fatal(err)
	}
	started, err := startCreated(t, s, "nofile")
	if err != nil {
		t.Fatal(err)
	}
	if got := prlimit(t, int(started.Pid), unix.RLIMIT_NOFILE); got != (unix.Rlimit{Cur: 100, Max: 200}) {
		t.Errorf("the keep host's RLIMIT_NOFILE is %d:%d (the shim's %d:%d), want the spec's 100:200", got.Cur, got.Max, own.Cur, own.Max)
	}
	if got := prlimit(t, int(started.Pid), unix.RLIMIT_CORE); got.Max != 0 {
		t.Errorf("the keep host's RLIMIT_CORE is %d:%d, want the spec's 0:0", got.Cur, got.Max)
	}

	// Raising a hard limit above the shim's needs CAP_SYS_RESOURCE. Without
	// it (CI's root lacks it) the start goes on and the keep host keeps
	// the shim's hard limit, with the soft one no higher: never more than
	// the shim has.
	var mq unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MSGQUEUE, &mq); err != nil {
		t.Fatal(err)
	}
	if mq.Max == unix.RLIM_INFINITY {
		t.Fatal("RLIMIT_MSGQUEUE has no hard limit here: cannot ask for more")
	}
	s = &service{ctx: context.Background(), events: make(chan any, 128)}
	err = createPause(t, s, "raise", func(p *specs.Process) {
		p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_MSGQUEUE", Soft: mq.Max + 1, Hard: mq.Max + 1}}
	})
	if err != nil {
		t.Fatal(err)
	}
	started, err = startCreated(t, s, "raise")
	if err != nil {
		t.Fatalf("a hard limit above the shim's: %v", err)
	}
	want := unix.Rlimit{Cur: mq.Max, Max: mq.Max}
	if hasCapSysResource(t) {
		want = unix.Rlimit{Cur: mq.Max + 1, Max: mq.Max + 1}
	}
	if got := prlimit(t, int(started.Pid), unix.RLIMIT_MSGQUEUE); got != want {
		t.Errorf("asked for %d:%d (CAP_SYS_RESOURCE: %v): the keep host's RLIMIT_MSGQUEUE is %d:%d, want %d:%d", mq.Max+1, mq.Max+1, hasCapSysResource(t), got.Cur, got.Max, want.Cur, want.Max)
	}

	// A spec runc would refuse fails the create, with the reason.
	for _, c := range []struct {
		name string
		rl   []specs.POSIXRlimit
		want string
	}{
		{"unknown", []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}}, "RLIMIT_BOGUS"},
		{"soft-above-hard", []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 300, Hard: 200}}, "soft limit 300 above its hard limit 200"},
		{"twice", []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 2}, {Type: "RLIMIT_NOFILE", Soft: 1, Hard: 3}}, "twice"},
	} {
		s := &service{ctx: context.Background(), events: make(chan any, 128)}
		err := createPause(t, s, c.name, func(p *specs.Process) { p.Rlimits = c.rl })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: create: %v, want an error naming %q", c.name, err, c.want)
		}
		if s.task != nil {
			t.Errorf("%s: a task was created", c.name)
		}
	}
}

func prlimit(t *testing.T, pid, res int) unix.Rlimit {
	t.Helper()
	var r unix.Rlimit
	if err := unix.Prlimit(pid, res, nil, &r); err != nil {
		t.Fatal(err)
	}
	return r
}
