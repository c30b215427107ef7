package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of a fresh-process measurement (see BenchmarkFirstFetch64MB).
const (
	envFirstFetch = "ENARX_BENCH_FIRST_FETCH" // "floor" or "fetch"
	envFFFile     = "ENARX_BENCH_FF_FILE"     // floor: the file to load
	envFFSpec     = "ENARX_BENCH_FF_SPEC"     // fetch: the package
	envFFCA       = "ENARX_BENCH_FF_CA"       // fetch: the registry's CA (PEM file)
)

// TestFirstFetchChild is the child process of BenchmarkFirstFetch64MB; it
// does nothing in a normal test run. It performs one operation in a
// process that has done nothing else and prints its duration.
func TestFirstFetchChild(t *testing.T) {
	mode := os.Getenv(envFirstFetch)
	if mode == "" {
		t.Skip("only run by BenchmarkFirstFetch64MB")
	}
	var d time.Duration
	switch mode {
	case "floor":
		start := time.Now()
		data, err := os.ReadFile(os.Getenv(envFFFile))
		if err != nil {
			t.Fatal(err)
		}
		sha256.Sum256(data)
		d = time.Since(start)
	case "fetch":
		ca, err := os.ReadFile(os.Getenv(envFFCA))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := ParsePackageSpec(os.Getenv(envFFSpec))
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(spec.Host, Options{CABundle: ca})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		f, err := c.FetchBundle(context.Background(), spec, nil)
		d = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Bundle) < 64<<20 {
			t.Fatalf("bundle of %d bytes", len(f.Bundle))
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	fmt.Printf("first-fetch-ns=%d\n", d.Nanoseconds())
}

// BenchmarkFirstFetch64MB compares, each in a fresh process as enarx
// deploy runs it, FetchBundle of a package with a 64 MiB main.wasm (no
// cache: TLS handshake, tag, directory, main.wasm into memory, verified)
// with its floor, reading the same file into memory and hashing it
// (SHA-256), as deploying it from a local file must. Process start-up is
// not counted in either; the registry runs in this process.
//
//	go test -run '^$' -bench FirstFetch64MB -benchtime 10x ./drawbridge/client/
func BenchmarkFirstFetch64MB(b *testing.B) {
	const size = 64 << 20
	var srv *httptest.Server
	c, repo := startRegistry(b, func(s *httptest.Server) { srv = s })
	dir := b.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	wasm := filepath.Join(dir, "pkg", "main.wasm")
	os.MkdirAll(filepath.Dir(wasm), 0o755)
	os.WriteFile(wasm, data, 0o644)
	tree, err := BuildTree(filepath.Dir(wasm))
	if err != nil {
		b.Fatal(err)
	}
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	if err := c.Publish(context.Background(), spec, tree); err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	child := func(mode string) time.Duration {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestFirstFetchChild$", "-test.count", "1")
		cmd.Env = append(os.Environ(), envFirstFetch+"="+mode, envFFFile+"="+wasm, envFFSpec+"="+spec.String(), envFFCA+"="+caFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%s child: %v\n%s", mode, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "first-fetch-ns="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					return time.Duration(n)
				}
			}
		}
		b.Fatalf("%s child printed no time:\n%s", mode, out)
		return 0
	}
	var r ratio
	b.SetBytes(size)
	for b.Loop() {
		floor := child("floor")
		op := child("fetch")
		r.add(stamp{}, stamp{wall: floor}, stamp{wall: floor + op})
	}
	r.report(b, "first-fetch", size)
}
