package types

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzNames(f *testing.F) {
	for _, s := range []string{"n4M3", "-n4M3", "1.2.3-test", "a/../b", "..", "/a/b/", "x:y.z", "1.0.0+build"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
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
