//go:build !cgo

package sandbox

import (
	"errors"
	"os"
)

// sharedSpawn: a CGO_ENABLED=0 build starts the Keep process with os/exec
// (see spawn_cgo_linux.go).
const sharedSpawn = false

func spawnShared(string, []string, []string, *os.File, []*os.File, uintptr) (*os.Process, error) {
	return nil, errors.New("not in a CGO_ENABLED=0 build")
}
