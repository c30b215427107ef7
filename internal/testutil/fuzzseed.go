package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// CheckSeedCorpus checks that testdata/fuzz/<fuzzName>/seed-N holds seeds[N]
// in `go test` corpus format, so that the seeds a fuzz target's f.Add uses
// are also committed (and run by plain `go test`). With UPDATE_FUZZ_SEEDS=1
// in the environment it (re)writes them instead.
func CheckSeedCorpus(t testing.TB, fuzzName string, seeds [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	update := os.Getenv("UPDATE_FUZZ_SEEDS") == "1"
	for i, s := range seeds {
		p := filepath.Join(dir, fmt.Sprintf("seed-%d", i))
		want := []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n")
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v): run UPDATE_FUZZ_SEEDS=1 go test -run %s", p, err, t.Name())
		}
	}
}
