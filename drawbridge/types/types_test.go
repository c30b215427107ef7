package types

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"github.com/go-jose/go-jose/v4"
)

const fooHeader = "sha-224=:CAj2TmDViXn8tnbJbsk4Jw3qQkRa7vzTpOb42w==:,sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:,sha-384=:mMEf/f3VQGdrGhN8saIrKnA1DJpEFx1rEYDGvly7LuP3nVMsih3Z7y6OCOdSo7q7:,sha-512=:9/u6bgY2+JDlb7vzKD5STG+jIErimDgtYkdB0NxmODJuKCxBvl5CVNiCB3LFUYosWowMf37aGVlKfrU5RT4e1w==:"

// golden707 is the root directory of upstream's wasm_example (reference §2.4).
const golden707 = `{"Enarx.toml":{"digest":{"sha-224":"SNwnHSFEjlDHbQt1lI8QZkyjH+rfSMSBw1Ptvw==","sha-256":"hbWJs+8/XYK18D9Mr2h1orkHLmDSqDYWcwvQuPPBJVc=","sha-384":"p9rVSYNRk+PdWHzgZQ5sTW3jqGo53sCYwvWhhHVYjjoWQaNdZmC7Jjo0x9CE6Baq","sha-512":"yc9oyf32cGSaJSAMj51xjIAANdMoMKLo2IChzDiYonfeFA8A1BUpkhxy6j3witx3ldp9hAB8DPOXUFhZLOQYSg=="},"length":79,"type":"application/toml"},"main.wasm":{"digest":{"sha-224":"vXCZCfe+zKI5GtcoOWP/RFi21EZw6m7NtloKEw==","sha-256":"51LuttW2C0ohRQaAf2DtNYyeahzNcYzcSeS16Rr9bJA=","sha-384":"IilZTec69dvOzQeH8rk5tZST4bhcTUjPIfI1qi2lHiXUo8YCOpIQm2vEAB/irjAL","sha-512":"zRFpR9PG1gnsjI78tYypHlst0gJgUnsZo1Jn/6aXceOzEH0YGUxQjRahGBIJJ5b7C/Zmo85d/JSU5UfkJXb4Lg=="},"length":53966,"type":"application/wasm"}}`

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFooVector(t *testing.T) {
	d, n := Compute([]byte("foo"))
	if n != 3 {
		t.Fatalf("length %d", n)
	}
	if got := d.String(); got != fooHeader {
		t.Fatalf("header\n got %s\nwant %s", got, fooHeader)
	}
	p, err := ParseContentDigest(fooHeader)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(d) || p.String() != fooHeader {
		t.Fatal("parse/format is not an isomorphism")
	}
	bar, _ := Compute([]byte("bar"))
	if bar.Equal(d) {
		t.Fatal("bar digests equal foo digests")
	}
}

func TestParseContentDigest(t *testing.T) {
	sha256foo := "sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:"
	good := map[string]int{
		"":        0,
		sha256foo: 1,
		strings.ToUpper(sha256foo[:7]) + sha256foo[7:]: 1,
		fooHeader: 4,
	}
	for in, n := range good {
		d, err := ParseContentDigest(in)
		if err != nil || len(d) != n {
			t.Errorf("ParseContentDigest(%q) = %v, %v; want %d items", in, d, err, n)
		}
	}
	// Several header lines merge; identical repeats are fine.
	d, err := ParseContentDigest(sha256foo, fooHeader)
	if err != nil || len(d) != 4 {
		t.Errorf("merge: %v %v", d, err)
	}
	bad := []string{
		"sha-256=LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=",       // no colons
		"sha-1=:C+7Hteo/D9vJXQ3UfzxbwnXaijM=:",                       // unknown
		"sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564:",      // unpadded
		"sha-256=:CAj2TmDViXn8tnbJbsk4Jw3qQkRa7vzTpOb42w==:",         // wrong length
		sha256foo + ", " + fooHeader[:strings.Index(fooHeader, ",")], // space after comma
		sha256foo + ",",
		"sha-256=:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564=:", // url alphabet
		"sha-256",
		"sha-256=:",
	}
	for _, in := range bad {
		if d, err := ParseContentDigest(in); err == nil {
			t.Errorf("ParseContentDigest(%q) = %v, want error", in, d)
		}
	}
	bar, _ := Compute([]byte("bar"))
	if _, err := ParseContentDigest(sha256foo, bar.String()); err == nil {
		t.Error("conflicting values accepted")
	}
}

func TestVerifyingReader(t *testing.T) {
	foo, _ := Compute([]byte("foo"))
	read := func(body string, length int64) error {
		v, err := NewVerifyingReader(iotest.OneByteReader(strings.NewReader(body)), foo, length)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, v)
		return err
	}
	if err := read("foo", 3); err != nil {
		t.Fatalf("foo: %v", err)
	}
	if err := read("bar", 3); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("bar: %v", err)
	}
	if err := read("fo", 3); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("short: %v", err)
	}
	if err := read("fooo", 3); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("long: %v", err)
	}
	if _, err := NewVerifyingReader(strings.NewReader(""), Digests{}, 0); err == nil {
		t.Fatal("empty digest set accepted")
	}
	// Only the named algorithms are checked: a sha-256-only set works.
	only := Digests{SHA256: foo[SHA256]}
	v, _ := NewVerifyingReader(strings.NewReader("foo"), only, 3)
	if _, err := io.Copy(io.Discard, v); err != nil {
		t.Fatal(err)
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"", " ", "/", "name/", "/name", "n%ame", "n.ame", "n-ame", "é"} {
		if _, err := ParseUserName(s); err == nil {
			t.Errorf("user %q accepted", s)
		}
	}
	if _, err := ParseUserName("n4M3"); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"", "group/name", "n%ame", "é", "a b", "n.ame"} {
		if _, err := ParseRepoName(s); err == nil {
			t.Errorf("repo %q accepted", s)
		}
	}
	if _, err := ParseRepoName("-n4M3"); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"", "=", "/", "v1.2/3", "v1.2.3", "1.2", "01.2.3", "1.2.3 "} {
		if _, err := ParseTagName(s); err == nil {
			t.Errorf("tag %q accepted", s)
		}
	}
	for _, s := range []string{"1.2.3", "1.2.3-test", "0.1.0", "1.0.0-rc.1+build.5"} {
		if _, err := ParseTagName(s); err != nil {
			t.Errorf("tag %q: %v", s, err)
		}
	}
	for _, s := range []string{"", ".", "..", "a/b", "a b", "%2e"} {
		if _, err := ParseTreeName(s); err == nil {
			t.Errorf("tree name %q accepted", s)
		}
	}
	for _, s := range []string{"some.txt", "my_wasm.wasm", "not.a.cor-Rec.t.eX.tens.si0n_", "a:b", "..."} {
		if _, err := ParseTreeName(s); err != nil {
			t.Errorf("tree name %q: %v", s, err)
		}
	}
	if _, err := ParseUserName(strings.Repeat("a", maxNameLen+1)); err == nil {
		t.Error("over-long name accepted")
	}
}

func TestTreePath(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "a": "a", "/a/b/": "a/b", "a/b": "a/b"} {
		p, err := ParseTreePath(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseTreePath(%q) = %q, %v; want %q", in, p, err, want)
		}
	}
	for _, in := range []string{"..", "a/..", "./a", "a//b", "a/%2e%2e", "a/./b"} {
		if p, err := ParseTreePath(in); err == nil {
			t.Errorf("ParseTreePath(%q) = %q, want error", in, p)
		}
	}
	p, _ := ParseTreePath("a/b")
	if !p.Parent().Child("c").Equal(TreePath{"a", "c"}) || p.String() != "a/b" {
		t.Error("Parent/Child")
	}
}

func (p TreePath) Equal(o TreePath) bool { return comparePaths(p, o) == 0 }

func TestGoldenDirectory(t *testing.T) {
	dir := Directory{
		"Enarx.toml": {Meta: Meta{Length: 79, Type: TOMLType, Digest: Digests{
			SHA224: b64(t, "SNwnHSFEjlDHbQt1lI8QZkyjH+rfSMSBw1Ptvw=="),
			SHA256: b64(t, "hbWJs+8/XYK18D9Mr2h1orkHLmDSqDYWcwvQuPPBJVc="),
			SHA384: b64(t, "p9rVSYNRk+PdWHzgZQ5sTW3jqGo53sCYwvWhhHVYjjoWQaNdZmC7Jjo0x9CE6Baq"),
			SHA512: b64(t, "yc9oyf32cGSaJSAMj51xjIAANdMoMKLo2IChzDiYonfeFA8A1BUpkhxy6j3witx3ldp9hAB8DPOXUFhZLOQYSg=="),
		}}},
		"main.wasm": {Meta: Meta{Length: 53966, Type: WasmType, Digest: Digests{
			SHA224: b64(t, "vXCZCfe+zKI5GtcoOWP/RFi21EZw6m7NtloKEw=="),
			SHA256: b64(t, "51LuttW2C0ohRQaAf2DtNYyeahzNcYzcSeS16Rr9bJA="),
			SHA384: b64(t, "IilZTec69dvOzQeH8rk5tZST4bhcTUjPIfI1qi2lHiXUo8YCOpIQm2vEAB/irjAL"),
			SHA512: b64(t, "zRFpR9PG1gnsjI78tYypHlst0gJgUnsZo1Jn/6aXceOzEH0YGUxQjRahGBIJJ5b7C/Zmo85d/JSU5UfkJXb4Lg=="),
		}}},
	}
	body, root, err := DirectoryNode(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != golden707 || len(body) != 707 {
		t.Fatalf("directory JSON (%d bytes)\n got %s\nwant %s", len(body), body, golden707)
	}
	want := Digests{
		SHA224: b64(t, "ipv22ZRLXTRv4MypL2IVaZypKHb91PgAqWXG6w=="),
		SHA256: b64(t, "Jcdf/Q0urZed/9dKu9IBq/BtWIHcvSGlsrUWkS1Rx+E="),
		SHA384: b64(t, "f52Mxw0vy4KHhk4MAKzfo3xfvi1sM+YpMhBaQvHMB2vGs378nyAADtEYxPlUnUoI"),
		SHA512: b64(t, "3weINHlihNmslwpckBdzARz4LdTMYsg+L1prU+u1FmwedBnYmpOIEB1Yix4kR3o4G4pbw+JLiSTBftGwLjFrqA=="),
	}
	if !root.Digest.Equal(want) || root.Length != 707 || root.Type != DirectoryType {
		t.Fatalf("root entry %+v", root)
	}
	tag, err := root.MarshalJSON()
	if err != nil || len(tag) != 367 {
		t.Fatalf("tag entry is %d bytes (%v): %s", len(tag), err, tag)
	}
	// Round trip through the parsers.
	parsed, err := ParseDirectory(body)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := parsed.MarshalJSON()
	if !bytes.Equal(again, body) {
		t.Fatal("directory does not round-trip")
	}
	e, err := ParseTag(EntryType, tag)
	if err != nil || !e.Meta.Equal(root.Meta) {
		t.Fatalf("tag round trip: %v", err)
	}
}

func TestOtherVectors(t *testing.T) {
	d, n := Compute([]byte(`{"public":true}`))
	if n != 15 || base64.StdEncoding.EncodeToString(d[SHA256]) != "/RjISkH4eBdKzp4T4hvlVpte4iPNRzsJD3xOxi/J4GQ=" {
		t.Fatal("repo config vector")
	}
	d, _ = Compute([]byte("text"))
	if base64.StdEncoding.EncodeToString(d[SHA256]) != "mC2ePrmW9VnmM/TRlN7zdh2Qn1o7ZH0ahR/q1nwyydE=" {
		t.Fatal("text vector")
	}
}

func TestEntryExtrasAndEscaping(t *testing.T) {
	foo, _ := Compute([]byte("foo"))
	e := Entry{Meta: Meta{Digest: Digests{SHA256: foo[SHA256]}, Length: 3, Type: "text/plain"},
		Extra: map[string]json.RawMessage{
			"z": json.RawMessage(`{ "b": 1, "a": ["<&>\u2028", 2.50] }`),
			"a": json.RawMessage(`"x\u0001\b\f\n"`),
		}}
	got, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="},"length":3,"type":"text/plain","a":"x\u0001\b\f\n","z":{"a":["<&>` + "\u2028" + `",2.50],"b":1}}`
	if string(got) != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	p, err := ParseEntry(got)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := p.MarshalJSON()
	if !bytes.Equal(again, got) {
		t.Fatal("entry does not round-trip")
	}
	e.Extra["type"] = json.RawMessage(`1`)
	if _, err := e.MarshalJSON(); err == nil {
		t.Fatal("shadowing extra accepted")
	}
}

func TestParseEntryRejects(t *testing.T) {
	ok := `"digest":{"sha-256":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564="}`
	for _, s := range []string{
		`{` + ok + `,"length":3}`,
		`{` + ok + `,"length":-1,"type":"a"}`,
		`{` + ok + `,"length":1.5,"type":"a"}`,
		`{` + ok + `,"length":3,"type":""}`,
		`{` + ok + `,"length":3,"type":"a","type":"b"}`,
		`{"digest":{},"length":3,"type":"a"}`,
		`{` + ok + `,"length":3,"type":"a"} x`,
		`[]`,
		`{` + ok + `,"length":3,"type":"a","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		if _, err := ParseEntry([]byte(s)); err == nil {
			t.Errorf("ParseEntry(%s) accepted", s)
		}
	}
	if _, err := ParseDirectory([]byte(`{"..":{` + ok + `,"length":3,"type":"a"}}`)); err == nil {
		t.Error("directory with .. accepted")
	}
}

func TestBuildTree(t *testing.T) {
	fsys := fstest.MapFS{
		"pkg/main.wasm":       {Data: []byte("\x00asm")},
		"pkg/Enarx.toml":      {Data: []byte("args = []\n")},
		"pkg/sub/deeper/x.md": {Data: []byte("x")},
		"pkg/empty":           {Mode: os.ModeDir},
	}
	nodes, err := BuildTree(fsys, "pkg", nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, n := range nodes {
		paths = append(paths, "/"+n.Path.String())
	}
	want := "/ /Enarx.toml /empty /main.wasm /sub /sub/deeper /sub/deeper/x.md"
	if strings.Join(paths, " ") != want {
		t.Fatalf("order %q", paths)
	}
	root, err := ParseDirectory(nodes[0].Content)
	if err != nil {
		t.Fatal(err)
	}
	if root["main.wasm"].Type != WasmType || root["Enarx.toml"].Type != TOMLType || root["sub"].Type != DirectoryType {
		t.Fatalf("root %s", nodes[0].Content)
	}
	// The Merkle chain links: each child's entry in its parent equals the
	// child's own entry.
	byPath := map[string]Node{}
	for _, n := range nodes {
		byPath[n.Path.String()] = n
	}
	for _, n := range nodes {
		if !n.isDir() {
			continue
		}
		d, _ := ParseDirectory(n.Content)
		for name, e := range d {
			c := byPath[n.Path.Child(name).String()]
			if !c.Entry.Meta.Equal(e.Meta) {
				t.Errorf("%s: parent entry does not match node", c.Path)
			}
		}
	}
	// Single file.
	one, err := BuildTree(fsys, "pkg/main.wasm", nil)
	if err != nil || len(one) != 1 || one[0].Entry.Type != WasmType || !one[0].Path.IsRoot() {
		t.Fatalf("single file: %v %+v", err, one)
	}
	// Bad names.
	if _, err := BuildTree(fstest.MapFS{"p/a b": {}}, "p", nil); err == nil {
		t.Fatal("bad name accepted")
	}
	// Symlinks to nowhere are errors (os.DirFS follows links).
	dir := t.TempDir()
	os.Symlink("/nonexistent", filepath.Join(dir, "link"))
	if _, err := BuildTree(os.DirFS(dir), ".", nil); err == nil {
		t.Fatal("dangling link accepted")
	}
}

func TestSignedTag(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	foo, _ := Compute([]byte("foo"))
	entry, _ := Entry{Meta: Meta{Digest: foo, Length: 3, Type: "text/plain"}}.MarshalJSON()
	jws, err := signer.Sign(entry)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseTag(JWSType, []byte(jws.FullSerialize()))
	if err != nil || e.Length != 3 {
		t.Fatalf("signed tag: %v", err)
	}
	bad, _ := signer.Sign([]byte("not json"))
	if _, err := ParseTag(JWSType, []byte(bad.FullSerialize())); err == nil {
		t.Fatal("non-entry payload accepted")
	}
	// A protected header that is base64url but not JSON (upstream panics).
	if _, err := ParseTag(JWSType, []byte(`{"payload":"e30","protected":"bm90IGpzb24","signature":"AAAA"}`)); err == nil {
		t.Fatal("garbage protected header accepted")
	}
	if _, err := ParseTag("application/json", entry); err == nil {
		t.Fatal("wrong content type accepted")
	}
}
