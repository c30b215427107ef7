//go:build race

package sandbox

// raceEnabled: under the race detector wazero compiles Go-built modules
// tens of times slower, so the workload tables run a representative subset.
const raceEnabled = true
