package sandbox

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
)

func init() {
	// Every descriptor above those the host passed (the launch has no
	// [[files]]: fds 0-3) that refers to a file of a file system —
	// regular file, directory, device, symlink — rather than to one of
	// the Go runtime's own (epoll, eventfd, pipe) or a socket.
	containmentHooks["host-fds"] = func(string) string {
		var out []string
		for fd := controlFD + 1; fd < 1024; fd++ {
			var st unix.Stat_t
			if unix.Fstat(fd, &st) != nil {
				continue
			}
			switch st.Mode & unix.S_IFMT {
			case 0, unix.S_IFIFO, unix.S_IFSOCK: // anonymous inodes, pipes, sockets
				continue
			}
			out = append(out, fmt.Sprintf("fd %d (mode %#o, device %d:%d, inode %d)", fd, st.Mode, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino))
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, ",")
	}
}

// TestKeepHoldsNoHostFiles: once confined, the Keep holds no descriptor
// of a host file beyond those the host passed, in either build. The Go
// runtime opens its cgroup's CPU limit files at start (cpu.max, or
// cpu.cfs_quota_us and cpu.cfs_period_us) and, with cgroup-aware
// GOMAXPROCS on, keeps them open for the process's life: files of the
// host's cgroup file system, outside the empty root, in the hands of a
// workload that escaped the wasm runtime. The Keep takes the host's
// GOMAXPROCS instead (launch.GoMaxProcs), so it starts with
// containermaxprocs=0, which closes them.
func TestKeepHoldsNoHostFiles(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	l := fake("probe", "host-fds")
	l.Options.NoCache, l.Options.CacheDir = false, testCacheDir
	code, _, err := run(context.Background(), l, hostOptions{})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probe: %d %v", code, err)
	}
	if out != "none" {
		t.Fatalf("the confined Keep holds descriptors of files it was not passed: %s", out)
	}
}
