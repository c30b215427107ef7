package types

import (
	"bytes"
	"io"
	"strings"
	"testing"

	mmsemver "github.com/Masterminds/semver/v3"
)

func FuzzNames(f *testing.F) {
	for _, s := range []string{"n4M3", "-n4M3", "1.2.3-test", "a/../b", "..", "/a/b/", "x:y.z", "1.0.0+build",
		"1.0.0-rc.1+build.05", "1.0.0-01", "1.0.0-0a", "01.2.3", "1.2", "v1.2.3", "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.2.3-ß"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Tag names are what they were when Masterminds/semver checked
		// them (strict parse, canonical display form): a stored tag stays
		// valid and nothing new becomes one.
		mv, merr := mmsemver.StrictNewVersion(s)
		was := merr == nil && mv.String() == s && len(s) <= maxNameLen
		if _, err := ParseSemver(s); (err == nil) != was {
			t.Fatalf("version %q: accepted %v, Masterminds/semver strict and canonical %v", s, err == nil, was)
		}
		if u, err := ParseUserName(s); err == nil && string(u) != s {
			t.Fatal("user name altered")
		}
		if r, err := ParseRepoName(s); err == nil && string(r) != s {
			t.Fatal("repo name altered")
		}
		if tag, err := ParseTagName(s); err == nil {
			if strings.ContainsAny(s, "/ %") || string(tag) != s {
				t.Fatalf("tag %q accepted", s)
			}
		}
		if n, err := ParseTreeName(s); err == nil && (n == "." || n == ".." || strings.Contains(s, "/")) {
			t.Fatalf("tree name %q accepted", s)
		}
		if p, err := ParseTreePath(s); err == nil {
			for _, n := range p {
				if n == "." || n == ".." || n == "" {
					t.Fatalf("path %q has component %q", s, n)
				}
			}
			q, err := ParseTreePath(p.String())
			if err != nil || q.String() != p.String() {
				t.Fatalf("path %q does not round-trip", s)
			}
		}
	})
}

func FuzzContentDigest(f *testing.F) {
	f.Add(fooHeader)
	f.Add("sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:")
	f.Add("SHA-512=:=:,sha-1=::")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseContentDigest(s)
		if err != nil {
			return
		}
		again, err := ParseContentDigest(d.String())
		if err != nil || !again.Equal(d) {
			t.Fatalf("%q: formatted form %q does not parse back: %v", s, d.String(), err)
		}
	})
}

func FuzzDirectory(f *testing.F) {
	f.Add([]byte(golden707))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":3,"type":"t","x":[1,{"b":null,"a":"\u2028<"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDirectory(data)
		if err != nil {
			return
		}
		canon, err := d.MarshalJSON()
		if err != nil {
			t.Fatalf("parsed directory does not encode: %v", err)
		}
		d2, err := ParseDirectory(canon)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, canon)
		}
		canon2, _ := d2.MarshalJSON()
		if !bytes.Equal(canon, canon2) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", canon, canon2)
		}
	})
}

func FuzzTag(f *testing.F) {
	f.Add(EntryType, []byte(`{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":3,"type":"t"}`))
	f.Add(JWSType, []byte(`{"payload":"e30","protected":"bm90IGpzb24","signature":"AAAA"}`))
	f.Add(JWSType, []byte(`{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AAAA"}]}`))
	f.Fuzz(func(t *testing.T, ct string, data []byte) {
		e, err := ParseTag(ct, data)
		if err != nil {
			return
		}
		if err := e.Meta.Validate(); err != nil {
			t.Fatalf("accepted invalid entry: %v", err)
		}
	})
}

// FuzzVerify feeds one stream (the fuzz bytes, repeated past the size from
// which hashing moves to its own goroutine when large is set), cut into
// reads of a fuzzed size, possibly altered (one byte flipped, bytes added
// or removed), to the three verifiers a hostile peer can reach —
// VerifyingReader, PipelinedVerifyingReader and ReadVerified — against the
// digest and length of the unaltered stream. All three must accept exactly
// the unaltered stream and pass exactly its bytes.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("foo"), false, uint16(1), int8(0), uint32(0))
	f.Add([]byte("foo"), true, uint16(4096), int8(0), uint32(0))
	f.Add([]byte("wasm module"), true, uint16(0), int8(0), uint32(5))
	f.Add([]byte{0}, true, uint16(777), int8(-1), uint32(0))
	f.Add([]byte("x"), false, uint16(3), int8(2), uint32(0))
	f.Fuzz(func(t *testing.T, unit []byte, large bool, readSize uint16, lenDelta int8, flip uint32) {
		if len(unit) == 0 {
			return
		}
		n := len(unit)
		if large {
			n = pipelineMin + len(unit) + 3
		}
		want := bytes.Repeat(unit, n/len(unit)+1)[:n]
		sum, _ := Compute(want)
		digests := Digests{SHA256: sum[SHA256]}
		stream := bytes.Clone(want)
		if flip != 0 {
			stream[int(flip)%len(stream)] ^= 0x80
		}
		switch d := int(lenDelta % 3); {
		case d > 0:
			stream = append(stream, bytes.Repeat([]byte{7}, d)...)
		case d < 0 && -d <= len(stream):
			stream = stream[:len(stream)+d]
		}
		good := bytes.Equal(stream, want)
		reads := func() io.Reader {
			r := io.Reader(bytes.NewReader(stream))
			if readSize > 0 {
				r = &chunkReader{r: r, n: int(readSize)}
			}
			return r
		}
		check := func(name string, got []byte, err error) {
			t.Helper()
			switch {
			case good && err != nil:
				t.Fatalf("%s rejected the stream it was promised: %v", name, err)
			case good && !bytes.Equal(got, want):
				t.Fatalf("%s passed other bytes", name)
			case !good && err == nil:
				t.Fatalf("%s accepted an altered stream", name)
			}
		}
		v, err := NewVerifyingReader(reads(), digests, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(v)
		check("VerifyingReader", got, err)
		p, err := NewPipelinedVerifyingReader(reads(), digests, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(p)
		p.Close()
		check("PipelinedVerifyingReader", got, err)
		dst := make([]byte, n)
		err = ReadVerified(reads(), dst, digests)
		check("ReadVerified", dst, err)
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}
