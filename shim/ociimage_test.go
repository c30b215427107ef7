package shim_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeImage writes an OCI image layout archive (what `ctr image import`
// takes) holding one image named name for platform (wasi/wasm, or the
// node's for containerd 1.6's CRI, which pulls and unpacks only that): one
// layer with files at its root, and ENTRYPOINT ["/main.wasm"] — the shape
// `docker buildx build --platform wasi/wasm` gives a FROM scratch image.
func writeImage(t testing.TB, path, name string, platform ocispec.Platform, files map[string][]byte) {
	t.Helper()
	writeImageConfig(t, path, name, platform, files, ocispec.ImageConfig{Entrypoint: []string{"/main.wasm"}})
}

// writeImageConfig is writeImage with the image config given.
func writeImageConfig(t testing.TB, path, name string, platform ocispec.Platform, files map[string][]byte, config ocispec.ImageConfig) {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	add := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		blobs[d] = b
		return d
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	epoch := time.Unix(0, 0)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	diffID := digest.FromBytes(layer.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: add(gz.Bytes()), Size: int64(gz.Len())}

	cfg := mustJSON(t, ocispec.Image{
		Platform: platform,
		Config:   config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	manifest := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: add(cfg), Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	index := mustJSON(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest, Digest: add(manifest), Size: int64(len(manifest)),
			Platform:    &platform,
			Annotations: map[string]string{"io.containerd.image.name": name, ocispec.AnnotationRefName: "latest"},
		}},
	})

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	put := func(n string, b []byte) {
		if err := aw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := aw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	put(ocispec.ImageLayoutFile, mustJSON(t, ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}))
	put("index.json", index)
	ds := make([]string, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, string(d))
	}
	sort.Strings(ds)
	for _, d := range ds {
		dd := digest.Digest(d)
		put(filepath.Join("blobs", dd.Algorithm().String(), dd.Encoded()), blobs[dd])
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sum is a short content hash for names.
func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b))[:12] }
