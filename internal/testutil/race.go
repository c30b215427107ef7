package testutil

import "testing"

// Race reports whether this test binary was built with -race.
const Race = race

// SkipUnderRace skips t in a race-detector build, saying why. make test
// runs every test twice: with -race (and cgo, so with both engines), then
// again without cgo for the packages its CGO_ENABLED=0 pass names
// (Makefile): use it only in those packages, so that what it skips
// still runs.
func SkipUnderRace(t testing.TB, why string) {
	t.Helper()
	if Race {
		t.Skip(why + "; make test runs it in its CGO_ENABLED=0 pass")
	}
}

// SkipWazeroUnderRace skips, in a race-detector build, a test that runs a
// Go-built module on wazero (onWazero): the detector instruments wazero's
// compiler, which then takes 40 s or more for a 2.6 MB module (3.7 s
// without it), and each test has its own module. The same test on
// wasmtime, whose compiler is not Go, runs; on wazero it runs in the
// CGO_ENABLED=0 pass (see SkipUnderRace).
func SkipWazeroUnderRace(t testing.TB, onWazero bool) {
	t.Helper()
	if onWazero {
		SkipUnderRace(t, "a Go-built module on wazero, whose compiler -race slows ten times or more")
	}
}
