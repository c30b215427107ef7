//go:build race

package sandbox

// raceAddressSpace is what a race detector build adds to RLIMIT_AS: the
// detector's shadow memory took a Keep of Go's hello on wasmtime to 5.8-6.1
// GiB of address space, past the 6 GiB of the default memory limit +
// 2 GiB, where the same Keep of a build without it peaks at 5.6-5.8 GiB.
const raceAddressSpace = 4 << 30
