//go:build linux && !amd64

package sandbox

// seccompPrograms has no filter for this architecture: the allow-list
// names amd64 system calls (arch_prctl, poll, epoll_wait, newfstatat),
// several of which arm64 does not have, so the sandbox backend is not
// available here (Available, docs/sandbox.md "Limitations").
var seccompPrograms [4]prebuiltFilter
