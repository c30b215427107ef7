package sandbox

import (
	"encoding/json"
	"os"
)

// The test seam. This package's tests run Keeps with confinement layers
// left out, to show each layer refusing on its own. That request is no
// part of the launch message: a test's host puts it in the Keep process's
// environment (testSkipEnv, through hostOptions.env), and only a test
// binary's Keep reads it — testBinary is set by this package's TestMain,
// never in enarx, whose Keep ignores the variable. What the tests try
// inside a confined Keep runs in their stand-in for keep.Run
// (sandbox_test.go), not here.

// testSkipEnv holds the JSON list of the layer names to leave out.
const testSkipEnv = "ENARX_SANDBOX_TEST_SKIP"

// testSkipOwnProc, in that list, leaves out a cgo build's /proc of the
// Keep's pid namespace (as a kernel that refuses the mount would).
const testSkipOwnProc = "own /proc"

// testBinary is set by this package's TestMain only.
var testBinary bool

// preConfinePPID is the parent pid as the Keep saw it before confinement
// (test binaries only: 0 shows the Keep is in its own pid namespace).
var preConfinePPID int

// testSkip is the set of layers a test asked to leave out; nil outside
// test binaries.
func testSkip() map[string]bool {
	if !testBinary {
		return nil
	}
	var names []string
	if v := os.Getenv(testSkipEnv); v == "" || json.Unmarshal([]byte(v), &names) != nil {
		return nil
	}
	skip := map[string]bool{}
	for _, s := range names {
		skip[s] = true
	}
	return skip
}
