//go:build !race

package sandbox

// raceAddressSpace: see race_on.go.
const raceAddressSpace = 0
