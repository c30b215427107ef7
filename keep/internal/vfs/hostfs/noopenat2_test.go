package hostfs

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// TestNoOpenat2: on a kernel without openat2 (here: a child test process
// whose seccomp filter answers ENOSYS, as Linux before 5.6 does) New
// refuses the directory with a clear error instead of walking paths
// unsafely.
func TestNoOpenat2(t *testing.T) {
	if os.Getenv("HOSTFS_TEST_NO_OPENAT2") == "1" {
		filter := seccomp.Filter{
			NoNewPrivs: true,
			Flag:       seccomp.FilterFlagTSync,
			Policy: seccomp.Policy{
				DefaultAction: seccomp.ActionAllow,
				Syscalls: []seccomp.SyscallGroup{{
					Action: seccomp.Action(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)),
					Names:  []string{"openat2"},
				}},
			},
		}
		must(t, seccomp.LoadFilter(filter))
		f, err := os.Open(t.TempDir())
		must(t, err)
		d, err := New(f, false)
		if err == nil {
			d.Close()
			t.Fatal("New succeeded without openat2")
		}
		if !errors.Is(err, syscall.ENOSYS) || !strings.Contains(err.Error(), "Linux 5.6") {
			t.Fatalf("New without openat2 = %v, want an error naming the kernel it needs", err)
		}
		t.Logf("New: %v", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoOpenat2$", "-test.v")
	cmd.Env = append(os.Environ(), "HOSTFS_TEST_NO_OPENAT2=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "openat2(2) is not available") {
		t.Fatalf("child did not run the check:\n%s", out)
	}
}
