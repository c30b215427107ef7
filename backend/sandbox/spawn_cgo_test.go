//go:build cgo

package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// TestSpawnShared starts a shell with spawnShared, as the Keep is started,
// and has it report what it got: /dev/null as stdin and stdout, the given
// stderr and extra descriptors in order, the environment, its own session,
// root of a user namespace mapped to the Keep's host id, a new pid
// namespace and no blocked signal; a program that cannot be started is an
// error.
func TestSpawnShared(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		testutil.NeedHost(t, "no /bin/sh: %v", err)
	}
	if err := probeNamespaces(); err != nil {
		testutil.NeedHost(t, "no user namespaces: %v", err)
	}
	dir := t.TempDir()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	marker, err := os.Create(filepath.Join(dir, "marker"))
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	for _, c := range []struct {
		name  string
		flags uintptr
	}{
		{"user namespace", nsFlags &^ syscall.CLONE_NEWPID},
		{"all namespaces", nsFlags},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// fd 5 is a copy of the shell's stdout: readlink's own goes
			// to the pipe.
			script := `exec 5>&1
readlink /proc/self/fd/0 /proc/self/fd/5 /proc/self/fd/2 /proc/self/fd/4 >&3
exec >&3
echo "env=$FOO"
echo "pid=$$"
echo "uid=$(id -u) gid=$(id -g)"
echo "uid_map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
awk '{print "sid=" $6}' /proc/self/stat
grep SigBlk /proc/self/status | tr -d ' \t'`
			p, err := spawnShared("/bin/sh", []string{"sh", "-c", script}, []string{"FOO=bar", "PATH=/usr/bin:/bin"}, stderr, []*os.File{w, marker}, c.flags)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			st, err := p.Wait()
			if err != nil || !st.Success() {
				b, _ := os.ReadFile(stderr.Name())
				t.Fatalf("%v %v; stderr %s", st, err, b)
			}
			want := []string{"/dev/null", "/dev/null", stderr.Name(), marker.Name(), "env=bar"}
			if c.flags&syscall.CLONE_NEWPID != 0 {
				want = append(want, "pid=1")
			} else {
				want = append(want, fmt.Sprintf("pid=%d", p.Pid))
			}
			want = append(want, "uid=0 gid=0", fmt.Sprintf("uid_map=0 %d 1", keepHostID(os.Geteuid())))
			// /proc is the host's: the session id is in its pid
			// namespace, the one p.Pid is.
			want = append(want, fmt.Sprintf("sid=%d", p.Pid))
			// The host thread's signal mask (Go's: nothing blocked),
			// not the all-blocked one the child had until execve.
			want = append(want, "SigBlk:0000000000000000")
			if len(lines) < len(want) || strings.Join(lines[:len(want)], "\n") != strings.Join(want, "\n") {
				t.Fatalf("the child reported\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	if _, err := spawnShared("/nonexistent-enarx-keep", []string{"x"}, nil, stderr, nil, nsFlags); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing program: %v", err)
	}
}
