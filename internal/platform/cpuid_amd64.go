package platform

// cpuidRaw executes the CPUID instruction (cpuid_amd64.s). Assembly, not
// cgo: Go has no intrinsic for it and x/sys/cpu does not expose raw leaves.
func cpuidRaw(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// HostCPUID is the machine's CPUID.
func HostCPUID(leaf, sub uint32) (eax, ebx, ecx, edx uint32) { return cpuidRaw(leaf, sub) }
