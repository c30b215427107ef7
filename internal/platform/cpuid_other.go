//go:build !amd64

package platform

// HostCPUID is nil off x86-64: there is no CPUID.
var HostCPUID func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
