//go:build !race

package keep

// raceSlowdown is 1 outside race-detector builds; see race.go.
const raceSlowdown = 1
