package shim

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCgroupOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/enarx-test/a", "/enarx-test/a"},
		{"/kubepods/burstable/pod1/../x", "/kubepods/burstable/x"},
		// The kubelet's systemd driver: slice:prefix:name.
		{"kubepods-burstable-pod12.slice:cri-containerd:abc", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-abc.scope"},
		{"system.slice::abc", "/system.slice/abc.scope"},
		{"-.slice:p:abc", "/p-abc.scope"},
	} {
		got, err := cgroupOf(&specs.Spec{Linux: &specs.Linux{CgroupsPath: tc.in}})
		if err != nil || got != tc.want {
			t.Errorf("cgroupOf(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"relative/path", "a.slice:b", "nope:p:n", "a--b.slice:p:n", "-a.slice:p:n", "a.slice:p:", "a.slice:p:../x",
		// The root cgroup (every process on the node, which delete would kill).
		"/", "//", "/..", "/a/../..", "/./"} {
		if got, err := cgroupOf(&specs.Spec{Linux: &specs.Linux{CgroupsPath: bad}}); err == nil {
			t.Errorf("cgroupOf(%q) = %q, accepted", bad, got)
		}
	}
	if got, err := cgroupOf(&specs.Spec{}); got != "" || err != nil {
		t.Errorf("no Linux section: %q, %v", got, err)
	}
}
