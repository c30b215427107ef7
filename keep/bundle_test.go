package keep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/identity"
)

// testBundle encodes a directory package holding wasm and config.
func testBundle(t *testing.T, wasm, config []byte) ([]byte, types.Entry) {
	t.Helper()
	rec := func(path, typ string, body []byte) bundle.Record {
		sum, _ := types.Compute(body)
		return bundle.Record{Path: path, Type: typ, Digest: sum.String(), Body: body}
	}
	we, _ := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	ce, _ := types.FileEntry(bytes.NewReader(config), types.TOMLType)
	dir, root, err := types.DirectoryNode(types.Directory{bundle.WasmName: we, bundle.ConfigName: ce})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := root.MarshalJSON()
	b := &bundle.Bundle{Source: "h/u/r:1.0.0", Records: []bundle.Record{
		rec(bundle.TagPath, types.EntryType, tag),
		rec(bundle.RootPath, types.DirectoryType, dir),
		rec(bundle.WasmName, types.WasmType, wasm),
		rec(bundle.ConfigName, types.TOMLType, config),
	}}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out, root
}

func TestOpenBundle(t *testing.T) {
	wasm, cfg := []byte("\x00asm\x01\x00\x00\x00"), []byte("args = [\"x\"]\n")
	data, root := testBundle(t, wasm, cfg)
	w := Workload{Bundle: data}
	if err := openBundle(&w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Wasm, wasm) || !bytes.Equal(w.Config, cfg) || w.Bundle != nil {
		t.Fatal("workload not taken from the bundle")
	}
	if w.Package != bundle.PackageDigest(root.Digest) || !strings.HasPrefix(w.Package, "sha-256=:") {
		t.Fatalf("Package = %q", w.Package)
	}
	// Nothing else may ride along with a bundle.
	for _, w := range []Workload{
		{Bundle: data, Wasm: []byte("other")},
		{Bundle: data, Config: []byte("args = []")},
		{Bundle: data, Package: "sha-256=:x:"},
	} {
		if err := openBundle(&w); err == nil {
			t.Fatalf("accepted %+v", w)
		}
	}
}

// TestRunRefusesTamperedBundle: a host that alters main.wasm in transit
// makes Run fail before anything is compiled, naming the node.
func TestRunRefusesTamperedBundle(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	data, _ := testBundle(t, wasm, []byte("args = []\n"))
	i := bytes.LastIndex(data, wasm)
	data[i+len(wasm)-1] ^= 1
	code, err := Run(context.Background(), Workload{Bundle: data}, Options{NoCache: true})
	if err == nil || code != 1 || !strings.Contains(err.Error(), "node /main.wasm") {
		t.Fatalf("code %d, err %v", code, err)
	}
}

// TestBundlePackageReachesIdentity: for a verified bundle, the identity the
// Keep requests (what its certificate will carry) names the package's root
// digest and the digests of the verified wasm and config.
func TestBundlePackageReachesIdentity(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	cfg := []byte("[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tls\"\nport = 10443\n")
	data, root := testBundle(t, wasm, cfg)
	var got identity.Request
	stop := errors.New("stop after identity")
	_, err := Run(context.Background(), Workload{Bundle: data}, Options{
		NoCache: true,
		Identity: func(_ context.Context, r identity.Request) (*identity.Identity, error) {
			got = r
			return nil, stop
		},
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Run: %v", err)
	}
	ws, cs := sha256.Sum256(wasm), sha256.Sum256(cfg)
	if got.Workload.Package != bundle.PackageDigest(root.Digest) ||
		!bytes.Equal(got.Workload.WasmSHA256, ws[:]) || !bytes.Equal(got.Workload.ConfigSHA256, cs[:]) {
		t.Fatalf("identity request workload %+v", got.Workload)
	}
}

// TestRunRefusesPackageWithoutBundle: a package digest is named in the
// Keep's identity (and bound into its hardware report data) only when the
// Keep verified the package itself (Workload.Bundle). A host that passes
// a module with a package digest of its choosing (the sandbox's and the
// microVM's launch messages carry Workload.Package) must not get a Keep
// whose certificate says it runs that package.
func TestRunRefusesPackageWithoutBundle(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	cfg := []byte("[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tls\"\nport = 10443\n")
	var asked *identity.Request
	stop := errors.New("stop after identity")
	code, err := Run(context.Background(), Workload{Wasm: wasm, Config: cfg, Package: "sha-256=:forged:"}, Options{
		NoCache: true,
		Identity: func(_ context.Context, r identity.Request) (*identity.Identity, error) {
			asked = &r
			return nil, stop
		},
	})
	if asked != nil {
		t.Fatalf("identity requested for an unverified package: %+v", asked.Workload)
	}
	if err == nil || errors.Is(err, stop) || code != 1 || !strings.Contains(err.Error(), "package digest") {
		t.Fatalf("code %d, err %v", code, err)
	}
}
