package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/drawbridge/store"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/oidctest"
)

// startRegistry starts the real registry in-process over TLS on 127.0.0.1
// and returns a client with a token for user "bench" (registered, with a
// public repository "app").
func startRegistry(b testing.TB) (*Client, RepoSpec) {
	b.Helper()
	idp := oidctest.New(b)
	fs, err := store.OpenFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fs.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	host := ln.Addr().String()
	aud := "https://" + host + "/"
	tokens, err := server.NewOIDCVerifier(context.Background(), idp.Issuer, aud, nil)
	if err != nil {
		b.Fatal(err)
	}
	h, err := server.New(server.Config{Registry: store.NewRegistry(fs), Tokens: tokens,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.StartTLS()
	b.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	tok := idp.Token(b, oidctest.Claims{Subject: "bench|user", Audience: []string{aud}, Scope: oidctest.AllScopes})
	c, err := New(host, Options{CABundle: ca, Token: tok})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	repo, _ := ParseRepoSpec(host + "/bench/app")
	if err := c.PutUser(ctx, "bench", UserRecord{Subject: "bench|user"}); err != nil {
		b.Fatal(err)
	}
	if err := c.PutRepo(ctx, repo, RepoConfig{Public: true}); err != nil {
		b.Fatal(err)
	}
	return c, repo
}

// floor is the least a verifying fetch-to-disk must do: hash the bytes once
// (SHA-256) and write them to a file.
func floor(b *testing.B, data []byte, dir string) {
	h := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, "floor-"+string(rune('a'+h[0]%26))), data, 0o600); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPublishAndFetch64MB publishes and deploy-fetches a package with
// a 64 MiB main.wasm through the real registry over TLS, interleaved with
// the sha256+disk floor, and reports each as a fraction of the floor's
// speed (1.0 = as fast as hashing and writing the bytes once):
//
//	go test -run '^$' -bench PublishAndFetch64MB -benchtime 3x ./drawbridge/client/
func BenchmarkPublishAndFetch64MB(b *testing.B) {
	const size = 64 << 20
	c, repo := startRegistry(b)
	ctx := context.Background()
	dir := b.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	os.WriteFile(filepath.Join(dir, "main.wasm"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "Enarx.toml"), []byte("args = []\n"), 0o644)
	scratch := b.TempDir()

	// Publish every tag first (interleaved with the floor), then fetch
	// them (again interleaved), so that write-back of one phase does not
	// land in the other's measurement.
	var floorPubT, floorFetchT, pubT, fetchT time.Duration
	// CPU time (user+sys of this process, which includes the in-process
	// server) is reported too: on a shared machine it is steadier than
	// wall time.
	var floorCPU, fetchCPU time.Duration
	// The fastest iteration of each is least disturbed by other load.
	bestFloor, bestFetch := time.Duration(1<<62), time.Duration(1<<62)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		floor(b, data, scratch)
		floorPubT += time.Since(t0)

		t1 := time.Now()
		tree, err := BuildTree(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Publish(ctx, PackageSpec{RepoSpec: repo, Tag: tagFor(i)}, tree); err != nil {
			b.Fatal(err)
		}
		pubT += time.Since(t1)
	}
	for i := 0; i < b.N; i++ {
		t0, c0 := time.Now(), cpuTime()
		floor(b, data, scratch)
		floorFetchT += time.Since(t0)
		floorCPU += cpuTime() - c0
		bestFloor = min(bestFloor, time.Since(t0))

		t1, c1 := time.Now(), cpuTime()
		spec := PackageSpec{RepoSpec: repo, Tag: tagFor(i)}
		if _, err := c.FetchBundle(ctx, spec, &Cache{Dir: filepath.Join(scratch, "cache", string(tagFor(i)))}); err != nil {
			b.Fatal(err)
		}
		fetchT += time.Since(t1)
		fetchCPU += cpuTime() - c1
		bestFetch = min(bestFetch, time.Since(t1))
	}
	floorT := (floorPubT + floorFetchT) / 2
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(floorT), "floor-MB/s")
	b.ReportMetric(mbps(pubT), "publish-MB/s")
	b.ReportMetric(mbps(fetchT), "fetch-MB/s")
	b.ReportMetric(float64(floorPubT)/float64(pubT), "publish/floor")
	b.ReportMetric(float64(floorFetchT)/float64(fetchT), "fetch/floor")
	b.ReportMetric(float64(floorCPU)/float64(fetchCPU), "fetch/floor-cpu")
	b.ReportMetric(float64(bestFloor)/float64(bestFetch), "fetch/floor-best")
}

func tagFor(i int) types.TagName { return types.TagName(fmt.Sprintf("1.0.%d", i)) }

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
