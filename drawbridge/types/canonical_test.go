package types

import (
	"encoding/base64"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes f allocates (not a timing: the count does
// not depend on the machine's speed or load).
func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestCanonicalNestingIsLinear: re-encoding a value nested as deep as
// allowed costs about as much as its size. Each level used to decode the
// whole nested value again from its bytes: 38 (arrays) to 166 (objects)
// times the input in allocations, so a 16 MiB directory node whose entry
// carries such an extra field held a core for seconds per upload.
func TestCanonicalNestingIsLinear(t *testing.T) {
	big := `"` + strings.Repeat("y", 1<<20) + `"`
	for _, c := range []struct{ name, open, close string }{
		{"arrays", "[", "]"},
		{"objects", `{"a":`, "}"},
	} {
		raw := []byte(strings.Repeat(c.open, maxJSONDepth) + big + strings.Repeat(c.close, maxJSONDepth))
		var out []byte
		var err error
		n := allocated(func() { out, err = Canonical(raw) })
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(out) != string(raw) {
			t.Fatalf("%s: canonical form differs from the (canonical) input", c.name)
		}
		if ratio := float64(n) / float64(len(raw)); ratio > 16 {
			t.Errorf("%s nested %d deep: %.0f× the input allocated, want at most 16×", c.name, maxJSONDepth, ratio)
		}
	}
	// The same through a directory node, where a client puts it.
	d, _ := Compute([]byte("x"))
	dir := []byte(`{"a":{"digest":{"sha-256":"` + base64.StdEncoding.EncodeToString(d[SHA256]) + `"},"length":1,"type":"t","x":` +
		strings.Repeat("[", maxJSONDepth) + big + strings.Repeat("]", maxJSONDepth) + `}}`)
	var err error
	n := allocated(func() { _, err = ParseDirectory(dir) })
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(n) / float64(len(dir)); ratio > 24 {
		t.Errorf("directory with a nested extra field: %.0f× the input allocated, want at most 24×", ratio)
	}
}

// TestCanonicalForms: what the single-pass encoder writes, including
// unsorted keys at several levels, serde's escaping and numbers as
// written; and what it refuses.
func TestCanonicalForms(t *testing.T) {
	for in, want := range map[string]string{
		` { "b" : 1 , "a" : [ 1 , { "d" : null , "c" : true } ] } `: `{"a":[1,{"c":true,"d":null}],"b":1}`,
		`{"z":{"y":{"x":{"b":2,"a":1}}},"A":[]}`:                    `{"A":[],"z":{"y":{"x":{"a":1,"b":2}}}}`,
		`"a\u2028<>&\n\u0001\/"`:                                    "\"a\u2028<>&\\n\\u0001/\"",
		`[-0.50e+3,1E2,0,false]`:                                    `[-0.50e+3,1E2,0,false]`,
		`{"é":1,"e":2}`:                                             `{"e":2,"é":1}`,
		`{}`:                                                        `{}`,
	} {
		got, err := Canonical([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{``, ` `, `{"a":1,"a":2}`, `[1,]`, `{"a"}`, `1 2`, `"x"]`, `{"a":1}}`, `nul`,
		strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)} {
		if got, err := Canonical([]byte(in)); err == nil {
			t.Errorf("Canonical(%q) = %s, want an error", in, got)
		}
	}
}
