package testutil

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// CheckSeedCorpus checks that testdata/fuzz/<fuzzName>/seed-N holds seeds[N]
// in `go test` corpus format, so that the seeds a fuzz target's f.Add uses
// are also committed (and run by plain `go test`). With UPDATE_FUZZ_SEEDS=1
// in the environment it (re)writes them instead.
func CheckSeedCorpus(t testing.TB, fuzzName string, seeds [][]byte) {
	t.Helper()
	files := make([][]byte, len(seeds))
	for i, s := range seeds {
		files[i] = CorpusFile(s)
	}
	checkCorpusFiles(t, fuzzName, files)
}

// CheckSeedCorpusArgs is CheckSeedCorpus for fuzz targets whose arguments
// are not one []byte: seeds[N] holds the arguments of one f.Add call, in
// order (string, []byte, bool, the integer and float types, as f.Add takes
// them). Give f.Add the arguments by name, not as s...: go vet's tests
// check cannot see through the spread and reports a mismatch.
func CheckSeedCorpusArgs(t testing.TB, fuzzName string, seeds [][]any) {
	t.Helper()
	files := make([][]byte, len(seeds))
	for i, s := range seeds {
		files[i] = CorpusFile(s...)
	}
	checkCorpusFiles(t, fuzzName, files)
}

// CheckStringSeedCorpus is CheckSeedCorpus for fuzz targets taking one
// string.
func CheckStringSeedCorpus(t testing.TB, fuzzName string, seeds []string) {
	t.Helper()
	files := make([][]byte, len(seeds))
	for i, s := range seeds {
		files[i] = CorpusFile(s)
	}
	checkCorpusFiles(t, fuzzName, files)
}

func checkCorpusFiles(t testing.TB, fuzzName string, files [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	update := os.Getenv("UPDATE_FUZZ_SEEDS") == "1"
	for i, want := range files {
		p := filepath.Join(dir, fmt.Sprintf("seed-%d", i))
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

// CorpusFile encodes the arguments of one fuzz input as a `go test fuzz v1`
// corpus file, byte for byte as the go command writes it
// (internal/fuzz.marshalCorpusFile). It panics on a type fuzzing does not
// take, as f.Add does.
func CorpusFile(vals ...any) []byte {
	if len(vals) == 0 {
		panic("testutil.CorpusFile: no value")
	}
	b := bytes.NewBufferString("go test fuzz v1\n")
	for _, v := range vals {
		switch t := v.(type) {
		case int, int8, int16, int64, uint, uint16, uint32, uint64, bool:
			fmt.Fprintf(b, "%T(%v)\n", t, t)
		case float32:
			if math.IsNaN(float64(t)) && math.Float32bits(t) != math.Float32bits(float32(math.NaN())) {
				fmt.Fprintf(b, "math.Float32frombits(0x%x)\n", math.Float32bits(t))
			} else {
				fmt.Fprintf(b, "%T(%v)\n", t, t)
			}
		case float64:
			if math.IsNaN(t) && math.Float64bits(t) != math.Float64bits(math.NaN()) {
				fmt.Fprintf(b, "math.Float64frombits(0x%x)\n", math.Float64bits(t))
			} else {
				fmt.Fprintf(b, "%T(%v)\n", t, t)
			}
		case string:
			fmt.Fprintf(b, "string(%q)\n", t)
		case rune: // int32: the go command quotes valid runes only
			if utf8.ValidRune(t) {
				fmt.Fprintf(b, "rune(%q)\n", t)
			} else {
				fmt.Fprintf(b, "int32(%v)\n", t)
			}
		case byte: // uint8
			fmt.Fprintf(b, "byte(%q)\n", t)
		case []byte:
			fmt.Fprintf(b, "[]byte(%q)\n", t)
		default:
			panic(fmt.Sprintf("testutil.CorpusFile: unsupported type %T", v))
		}
	}
	return b.Bytes()
}
