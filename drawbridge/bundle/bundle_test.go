package bundle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// pkg is a test package: a directory with main.wasm and Enarx.toml.
type pkg struct {
	wasm, config []byte
	dir          []byte
	root         types.Entry
	tag          []byte
}

func newPkg(t testing.TB, wasm, config []byte) pkg {
	t.Helper()
	we, _ := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	d := types.Directory{WasmName: we}
	if config != nil {
		ce, _ := types.FileEntry(bytes.NewReader(config), types.TOMLType)
		d[ConfigName] = ce
	}
	body, root, err := types.DirectoryNode(d)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := root.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return pkg{wasm: wasm, config: config, dir: body, root: root, tag: tag}
}

func rec(path, typ string, body []byte) Record {
	sum, _ := types.Compute(body)
	return Record{Path: path, Type: typ, Digest: sum.String(), Body: body}
}

func (p pkg) bundle() *Bundle {
	b := &Bundle{Source: "localhost:8443/u/r:1.0.0", Records: []Record{
		rec(TagPath, types.EntryType, p.tag),
		rec(RootPath, types.DirectoryType, p.dir),
		rec(WasmName, types.WasmType, p.wasm),
	}}
	if p.config != nil {
		b.Records = append(b.Records, rec(ConfigName, types.TOMLType, p.config))
	}
	return b
}

func mustMarshal(t testing.TB, b *Bundle) []byte {
	t.Helper()
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyDirectoryPackage(t *testing.T) {
	p := newPkg(t, []byte("\x00asm\x01\x00\x00\x00"), []byte("[[files]]\nkind = \"stdin\"\n"))
	got, err := Verify(mustMarshal(t, p.bundle()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Wasm, p.wasm) || !bytes.Equal(got.Config, p.config) {
		t.Fatal("wrong wasm or config")
	}
	want := types.Digests{types.SHA256: p.root.Digest[types.SHA256]}.String()
	if got.Digest != want || !strings.HasPrefix(got.Digest, "sha-256=:") {
		t.Fatalf("digest %q, want %q", got.Digest, want)
	}
	s := sha256.Sum256(p.dir)
	if !bytes.Equal(p.root.Digest[types.SHA256], s[:]) {
		t.Fatal("package digest is not the root directory's sha-256")
	}
}

func TestVerifyWithoutConfig(t *testing.T) {
	p := newPkg(t, []byte("wasm"), nil)
	got, err := Verify(mustMarshal(t, p.bundle()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != nil {
		t.Fatal("config should be nil")
	}
}

func TestVerifySingleFilePackage(t *testing.T) {
	wasm := []byte("just wasm")
	e, _ := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	tag, _ := e.MarshalJSON()
	b := &Bundle{Records: []Record{rec(TagPath, types.EntryType, tag), rec(RootPath, types.WasmType, wasm)}}
	got, err := Verify(mustMarshal(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Wasm, wasm) || got.Config != nil {
		t.Fatal("wrong content")
	}
}

func TestVerifyPin(t *testing.T) {
	p := newPkg(t, []byte("wasm"), []byte("x = 1\n"))
	b := p.bundle()
	b.Pin = types.Digests{types.SHA256: p.root.Digest[types.SHA256]}.String()
	if _, err := Verify(mustMarshal(t, b)); err != nil {
		t.Fatalf("correct pin rejected: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	b.Pin = types.Digests{types.SHA256: other[:]}.String()
	_, err := Verify(mustMarshal(t, b))
	assertNode(t, err, "tag entry", "package digest mismatch")
}

// forgePinned returns the bundle a hostile registry can serve for good
// pinned to good's alg digest: evil's nodes under a tag entry that names,
// beside evil's true digests, good's alg value. The entry names the pin and
// every record matches its entry; only hashing evil's root with alg shows
// it is not the pinned content.
func forgePinned(t testing.TB, good, evil *Bundle, alg types.Algorithm) *Bundle {
	t.Helper()
	goodRoot, err := types.ParseEntry(good.Records[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := types.ParseEntry(evil.Records[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	forged.Digest = maps.Clone(forged.Digest)
	forged.Digest[alg] = goodRoot.Digest[alg]
	tag, err := forged.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Source: evil.Source, Pin: types.Digests{alg: goodRoot.Digest[alg]}.String(),
		Records: slices.Clone(evil.Records)}
	b.Records[0] = rec(TagPath, types.EntryType, tag)
	b.Records[1].Digest = forged.Digest.String()
	return b
}

// singleFile returns the bundle of a single-file package.
func singleFile(wasm []byte) *Bundle {
	e, _ := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	tag, _ := e.MarshalJSON()
	return &Bundle{Records: []Record{rec(TagPath, types.EntryType, tag), rec(RootPath, types.WasmType, wasm)}}
}

// TestVerifyPinOtherAlgorithms: a pin of any algorithm is a digest of the
// root's bytes, not only a value the tag entry names.
func TestVerifyPinOtherAlgorithms(t *testing.T) {
	kinds := []struct {
		name       string
		good, evil *Bundle
	}{
		{"directory", newPkg(t, []byte("the real wasm"), []byte("x = 1\n")).bundle(), newPkg(t, []byte("evil wasm"), []byte("x = 2\n")).bundle()},
		{"single file", singleFile([]byte("the real wasm")), singleFile([]byte("evil wasm"))},
	}
	for _, k := range kinds {
		for _, alg := range []types.Algorithm{types.SHA224, types.SHA384, types.SHA512} {
			t.Run(k.name+"/"+string(alg), func(t *testing.T) {
				root, _ := types.ParseEntry(k.good.Records[0].Body)
				good := *k.good
				good.Pin = types.Digests{alg: root.Digest[alg]}.String()
				got, err := Verify(mustMarshal(t, &good))
				if err != nil {
					t.Fatalf("correct %s pin rejected: %v", alg, err)
				}
				if got.Digest != PackageDigest(root.Digest) {
					t.Fatalf("digest %q, want %q", got.Digest, PackageDigest(root.Digest))
				}

				_, err = Verify(mustMarshal(t, forgePinned(t, k.good, k.evil, alg)))
				assertNode(t, err, "/", "does not hash to the pinned "+string(alg)+" digest")
				if !errors.Is(err, types.ErrDigestMismatch) {
					t.Fatalf("err = %v, want a content digest mismatch", err)
				}
			})
		}
	}
}

func assertNode(t *testing.T, err error, node, text string) {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a verification error naming %s", err, node)
	}
	if ve.Node != node || !strings.Contains(err.Error(), text) {
		t.Fatalf("err = %v (node %q), want node %q and %q", err, ve.Node, node, text)
	}
}

// TestVerifyRejectsTampering swaps, alters or relabels each node the way a
// lying host could, and checks that verification fails naming that node.
func TestVerifyRejectsTampering(t *testing.T) {
	p := newPkg(t, []byte("the real wasm"), []byte("x = 1\n"))
	evil := newPkg(t, []byte("evil wasm"), []byte("x = 2\n"))
	cases := []struct {
		name   string
		modify func(b *Bundle)
		node   string
		text   string
	}{
		{"wasm body changed, header recomputed", func(b *Bundle) { b.Records[2] = rec(WasmName, types.WasmType, []byte("the reel wasm")) }, "/main.wasm", "does not match its entry"},
		{"wasm body changed, header kept", func(b *Bundle) { b.Records[2].Body = []byte("the reel wasm") }, "/main.wasm", "content digest mismatch"},
		{"wasm truncated", func(b *Bundle) { b.Records[2].Body = b.Records[2].Body[:3] }, "/main.wasm", "length"},
		{"wasm type", func(b *Bundle) { b.Records[2].Type = "application/octet-stream" }, "/main.wasm", "content type"},
		{"config swapped", func(b *Bundle) { b.Records[3] = rec(ConfigName, types.TOMLType, evil.config) }, "/Enarx.toml", "does not match"},
		{"config dropped", func(b *Bundle) { b.Records = b.Records[:3] }, "/Enarx.toml", "missing"},
		{"directory swapped", func(b *Bundle) { b.Records[1] = rec(RootPath, types.DirectoryType, evil.dir) }, "/", "does not match"},
		{"directory body changed", func(b *Bundle) {
			b.Records[1].Body = bytes.Replace(bytes.Clone(b.Records[1].Body), []byte("application/toml"), []byte("application/tomm"), 1)
		}, "/", "mismatch"},
		{"tag swapped without pin is a different package", nil, "", ""},
		{"tag type", func(b *Bundle) { b.Records[0].Type = "application/json" }, "tag entry", "content type"},
		{"signed tag", func(b *Bundle) { b.Records[0].Type = types.JWSType }, "tag entry", "signed tags"},
		{"tag body changed", func(b *Bundle) {
			b.Records[0].Body = bytes.Replace(bytes.Clone(b.Records[0].Body), []byte(`"length":`), []byte(`"length":1`), 1)
		}, "tag entry", "mismatch"},
		{"tag missing", func(b *Bundle) { b.Records = b.Records[1:] }, "tag entry", "missing"},
		{"extra node", func(b *Bundle) {
			b.Records[3] = rec(ConfigName, types.TOMLType, []byte("x"))
			nb := newPkg(t, p.wasm, nil)
			b.Records[0] = rec(TagPath, types.EntryType, nb.tag)
			b.Records[1] = rec(RootPath, types.DirectoryType, nb.dir)
		}, "/Enarx.toml", "not named by the package"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.modify == nil {
				// Swapping the whole chain consistently yields the other
				// package, whose digest is then what the Keep reports.
				got, err := Verify(mustMarshal(t, evil.bundle()))
				if err != nil {
					t.Fatal(err)
				}
				if got.Digest == PackageDigest(p.root.Digest) {
					t.Fatal("different package reported with the same digest")
				}
				return
			}
			b := p.bundle()
			c.modify(b)
			_, err := Verify(mustMarshal(t, b))
			assertNode(t, err, c.node, c.text)
		})
	}
}

func TestVerifyLimits(t *testing.T) {
	// A directory entry claiming a wasm over the limit is refused before
	// anything is hashed.
	we := types.Entry{Meta: types.Meta{Digest: types.Digests{types.SHA256: make([]byte, 32)}, Length: MaxWasmSize + 1, Type: types.WasmType}}
	body, root, _ := types.DirectoryNode(types.Directory{WasmName: we})
	tag, _ := root.MarshalJSON()
	b := &Bundle{Records: []Record{rec(TagPath, types.EntryType, tag), rec(RootPath, types.DirectoryType, body)}}
	_, err := Verify(mustMarshal(t, b))
	assertNode(t, err, "/main.wasm", "exceeds the limit")

	// A root of an unknown type.
	fe, _ := types.FileEntry(strings.NewReader("x"), "text/plain")
	tag, _ = fe.MarshalJSON()
	b = &Bundle{Records: []Record{rec(TagPath, types.EntryType, tag), rec(RootPath, "text/plain", []byte("x"))}}
	_, err = Verify(mustMarshal(t, b))
	assertNode(t, err, "/", "unsupported package root type")
}

func TestDecodeRejects(t *testing.T) {
	p := newPkg(t, []byte("w"), nil)
	good := mustMarshal(t, p.bundle())
	cases := map[string][]byte{
		"empty":     nil,
		"bad magic": append([]byte("enarx-bundle/2\n"), good[len(Magic):]...),
		"truncated": good[:len(good)-1],
		"duplicate": append(bytes.Clone(good), good[len(Magic)+4+len(p.bundle().Source):]...),
	}
	dupUnknown := &Bundle{Records: []Record{rec("../etc/passwd", "x", []byte("x"))}}
	cases["unknown path"] = mustMarshal(t, dupUnknown)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(data); err == nil {
				t.Fatal("accepted")
			}
			if _, err := Verify(data); err == nil {
				t.Fatal("verified")
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	p := newPkg(t, []byte("wasm"), []byte("c"))
	b := p.bundle()
	b.Pin = "sha-256=:" + strings.Repeat("A", 43) + "=:"
	got, err := Decode(mustMarshal(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != b.Source || got.Pin != b.Pin || len(got.Records) != len(b.Records) {
		t.Fatalf("round trip: %+v", got)
	}
	for i := range b.Records {
		g, w := got.Records[i], b.Records[i]
		if g.Path != w.Path || g.Type != w.Type || g.Digest != w.Digest || !bytes.Equal(g.Body, w.Body) {
			t.Fatalf("record %d differs", i)
		}
	}
}

func FuzzVerify(f *testing.F) {
	p := newPkg(f, []byte("\x00asm\x01\x00\x00\x00"), []byte("x = 1\n"))
	good := mustMarshal(f, p.bundle())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic))
	// A sha-512 pin, honest and forged (see TestVerifyPinOtherAlgorithms).
	pinned := p.bundle()
	pinned.Pin = types.Digests{types.SHA512: p.root.Digest[types.SHA512]}.String()
	f.Add(mustMarshal(f, pinned))
	f.Add(mustMarshal(f, forgePinned(f, p.bundle(), newPkg(f, []byte("evil"), nil).bundle(), types.SHA512)))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkg, err := Verify(data)
		if err != nil {
			return
		}
		// Anything accepted must be internally consistent.
		if pkg.Wasm == nil || pkg.Digest == "" {
			t.Fatal("accepted without wasm or digest")
		}
		b, err := Decode(data)
		if err != nil {
			t.Fatal("verified but does not decode")
		}
		// A pin is a digest of the root's bytes, whatever its algorithm.
		if b.Pin != "" {
			pin, err := types.ParseContentDigest(b.Pin)
			if err != nil {
				t.Fatalf("verified with an invalid pin %q", b.Pin)
			}
			root, _ := b.record(RootPath)
			for a, want := range pin {
				h := types.NewHasher(a)
				h.Write(root.Body)
				if !bytes.Equal(h.Sum()[a], want) {
					t.Fatalf("verified, but the root does not hash to the pinned %s digest", a)
				}
			}
		}
	})
}
