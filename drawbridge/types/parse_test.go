package types

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// parseSeeds are inputs around encoding/json's quirks, which the parser
// must keep (they decide what a stored node means).
func parseSeeds() []string {
	const d = `"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="}`
	e := func(rest string) string { return `{` + d + `,"length":3,"type":"t"` + rest + `}` }
	return []string{
		golden707, `{}`, ` { } `, `{"a":` + e("") + `}`,
		`{"a":{` + d + `,"length":"3","type":"t"}}`,      // length as a string
		`{"a":{` + d + `,"length":"\u0033","type":"t"}}`, // … with an escape
		`{"a":{` + d + `,"length":"03","type":"t"}}`,     // not a number
		`{"a":{` + d + `,"length":null,"type":"t"}}`,     // empty number
		`{"a":{` + d + `,"length":3,"type":null}}`,       // empty type
		`{"a":{"digest":null,"length":3,"type":"t"}}`,    // no digest set
		`{"a":{"digest":{"sha-256":null},"length":3,"type":"t"}}`,
		`{"a":{"digest":{"SHA-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":3,"type":"t"}}`,
		`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=","Sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":3,"type":"t"}}`,
		`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564\n="},"length":3,"type":"t"}}`,
		`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":9223372036854775807,"type":"t"}}`,
		`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":9223372036854775808,"type":"t"}}`,
		`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":-0,"type":"t"}}`,
		`{"\u0061":` + e("") + `,"b":` + e("") + `}`, // escaped name
		`{"a":` + e("") + `,"\u0061":` + e("") + `}`, // the same name twice
		`{"a":{"\u0064igest":{},` + d + `,"length":3,"type":"t"}}`,
		`{"a":` + e(`,"x":"\ud800\u00e9\/\u2028\udc00\ud83d\ude00","y":[1,{"b":null,"a":"<>&"}],"\u00e9":-1.5e+3`) + `}`,
		`{"a":` + e(`,"x":"`+"\xff\xed\xa0\x80\xc3\xa9"+`"`) + `}`,
		`{"a":` + e(`,"x":{"b":1,"a":2,"b":3}`) + `}`,
		`{"a":` + e(`,"x":{"b":1,"a":2,"\u0062":3}`) + `}`,
		`{"a":` + e(`,"x":{"b":{"d":1,"c":2},"a":[{"f":0,"e":0}]}`) + `}`,
		`{"a":` + e(`,"x":1,"x":2`) + `}`,
		`{"a":` + e(`,"z":1,"y":2,"x":3,"w":4,"v":5,"u":6,"t":7,"s":8,"r":9,"z":0`) + `}`,
		`{"a":` + e(`,"x":`+strings.Repeat("[", maxJSONDepth+1)+strings.Repeat("]", maxJSONDepth+1)) + `}`,
		`{"a":` + e(`,"x":`+strings.Repeat("[", maxJSONDepth+2)+strings.Repeat("]", maxJSONDepth+2)) + `}`,
		`{"a":` + e(`,"x":`+strings.Repeat("[", maxJSONDepth)+`1`+strings.Repeat("]", maxJSONDepth)) + `}`,
		`{"a":` + e(`,"x":`+strings.Repeat("[", maxJSONDepth+1)+`1`+strings.Repeat("]", maxJSONDepth+1)) + `}`,
		`{"a":` + e(`,"x":[1,]`) + `}`, `{"a":` + e(`,"x":01`) + `}`, `{"a":` + e(`,"x":1.`) + `}`,
		`{"a":` + e(`,"x":"\x"`) + `}`, `{"a":` + e(`,"x":"\u12"`) + `}`, `{"a":` + e(`,"x":nul`) + `}`,
		`{"a":` + e("") + `,}`, `{"a":` + e("") + `}x`, `{"a":` + e("") + `} `, `{"a" ` + e("") + `}`,
		`{"a":` + e("") + ` "b":` + e("") + `}`, `[]`, ``, `"a"`, `{"..":` + e("") + `}`, `{"a/b":` + e("") + `}`,
	}
}

// fuzzCorpus adds the stored corpus of another fuzz target as seeds.
func fuzzCorpus(f *testing.F, target string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if q, ok := strings.CutPrefix(line, "[]byte("); ok {
				if s, err := strconv.Unquote(strings.TrimSuffix(q, ")")); err == nil {
					f.Add([]byte(s))
				}
			}
		}
	}
}

// FuzzParseMatchesReference holds the single-pass parser (parse.go) to the
// Decoder-based one it replaced (parseref_test.go): the same inputs
// accepted, with the same results, as directories, entries, digest sets
// and canonical values.
func FuzzParseMatchesReference(f *testing.F) {
	var seeds [][]byte
	for _, s := range parseSeeds() {
		seeds = append(seeds, []byte(s))
	}
	testutil.CheckSeedCorpus(f, "FuzzParseMatchesReference", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	fuzzCorpus(f, "FuzzDirectory")
	fuzzCorpus(f, "FuzzTag")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMatchesReference(t, data)
		// The same bytes as one entry, digest set and value.
		if i := bytes.IndexByte(data, ':'); i > 0 {
			checkMatchesReference(t, data[i+1:])
		}
	})
}

func checkMatchesReference(t *testing.T, data []byte) {
	t.Helper()
	same := func(what string, got, want any, err, werr error) {
		t.Helper()
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s of %q: error %v, reference error %v", what, data, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s of %q:\n got %#v\nwant %#v", what, data, got, want)
		}
	}
	d, err := ParseDirectory(data)
	wd, werr := refParseDirectory(data)
	same("ParseDirectory", d, wd, err, werr)
	e, err := ParseEntry(data)
	we, werr := refParseEntry(data)
	same("ParseEntry", e, we, err, werr)
	var ds Digests
	err = json.Unmarshal(data, &ds)
	var wds refDigests
	werr = json.Unmarshal(data, &wds)
	same("Digests", ds, Digests(wds), err, werr)
	c, err := Canonical(data)
	wc, werr := refCanonical(data)
	same("Canonical", c, wc, err, werr)
}

func TestParseMatchesReference(t *testing.T) {
	for _, s := range parseSeeds() {
		checkMatchesReference(t, []byte(s))
	}
	for _, s := range worstDirectories(256 << 10) {
		checkMatchesReference(t, s.data)
	}
}

// TestParseDirectoryAllocations: parsing a directory node allocates a few
// times its size in bytes and at most one object per 8 bytes, whatever its
// shape (counts, not timings: they do not depend on the machine or its
// load). The Decoder-based parser allocated 22 to 340 times the input, 0.4
// to 3 objects per byte of it; its 16 MiB worst cases took 2 to 11 s of
// CPU (see BenchmarkParseWorstDirectory).
func TestParseDirectoryAllocations(t *testing.T) {
	for _, s := range worstDirectories(1 << 20) {
		var n uint64
		allocs := testing.AllocsPerRun(1, func() {
			n = allocated(func() {
				if _, err := ParseDirectory(s.data); err != nil {
					t.Fatal(err)
				}
			})
		})
		size := float64(len(s.data))
		if r := float64(n) / size; r > 40 {
			t.Errorf("%s: %.1f× the input allocated, want at most 40×", s.name, r)
		}
		if r := allocs / size; r > 1.0/8 {
			t.Errorf("%s: %.3f allocations per input byte, want at most 1/8", s.name, r)
		}
	}
}

// worstDirectories are directory nodes of about size bytes in the shapes
// that cost the most to parse per byte.
func worstDirectories(size int) []struct {
	name string
	data []byte
} {
	sum, _ := Compute([]byte("x"))
	one := `{"sha-256":"` + base64.StdEncoding.EncodeToString(sum[SHA256]) + `"}`
	var all strings.Builder
	all.WriteByte('{')
	for i, a := range Algorithms {
		if i > 0 {
			all.WriteByte(',')
		}
		fmt.Fprintf(&all, "%q:%q", a, base64.StdEncoding.EncodeToString(sum[a]))
	}
	all.WriteByte('}')
	var out []struct {
		name string
		data []byte
	}
	add := func(name string, prefix string, item func(i int) string, suffix string) {
		var b bytes.Buffer
		b.WriteString(prefix)
		for i := 0; b.Len()+len(suffix)+64 < size; i++ {
			if i == maxDirectoryEntries && prefix == "{" {
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(item(i))
		}
		b.WriteString(suffix)
		out = append(out, struct {
			name string
			data []byte
		}{name, b.Bytes()})
	}
	entry := `{"digest":` + one + `,"length":1,"type":"t"`
	// As many short entries as a directory may have.
	add("entries", "{", func(i int) string { return fmt.Sprintf(`"%d":%s}`, i, entry) }, "}")
	// Entries with every digest, to the size limit.
	add("entries-4-digests", "{", func(i int) string {
		return fmt.Sprintf(`"%d":{"digest":%s,"length":1,"type":"t"}`, i, all.String())
	}, "}")
	// One entry with as many extra fields as fit (the worst before).
	add("extra-fields", `{"a":`+entry+`,`, func(i int) string { return fmt.Sprintf(`"%x":0`, i) }, "}}")
	// One extra field, an array of as many numbers as fit.
	add("extra-array", `{"a":`+entry+`,"x":[`, func(int) string { return "0" }, "]}}")
	// One extra field, an object whose keys are in reverse order.
	n := size / len(`"0000000":0,`)
	add("extra-object-unsorted", `{"a":`+entry+`,"x":{`, func(i int) string { return fmt.Sprintf(`"%07d":0`, n-i) }, "}}}")
	return out
}

// BenchmarkParseWorstDirectory parses 16 MiB directory nodes of the
// costliest shapes and, interleaved in the same loop (so that a busy
// machine slows both alike), decodes the same bytes with encoding/json
// into an `any`: the baseline, what any JSON body of that size costs. It
// reports ns/op of ParseDirectory alone, baseline-ns/op and their ratio
// (x-baseline). The Decoder-based parser that parse.go replaced took 2 s
// (x-baseline 6 to 7) for the entries shapes and up to 16 s (x-baseline
// 9) for extra-fields.
func BenchmarkParseWorstDirectory(b *testing.B) {
	for _, s := range worstDirectories(16 << 20) { // the registry's MaxDirectorySize
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(s.data)))
			b.ReportAllocs()
			var base time.Duration
			for i := 0; i < b.N; i++ {
				if _, err := ParseDirectory(s.data); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				start := time.Now()
				var v any
				if err := json.Unmarshal(s.data, &v); err != nil {
					b.Fatal(err)
				}
				base += time.Since(start)
				b.StartTimer()
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			baseOp := float64(base.Nanoseconds()) / float64(b.N)
			b.ReportMetric(baseOp, "baseline-ns/op")
			b.ReportMetric(perOp/baseOp, "x-baseline")
		})
	}
}
