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

// floorWrite is the least a verifying fetch-to-disk must do: hash the
// bytes once (SHA-256) and write them to a file that stays (page cache,
// like the fetch's cache entry, which stays too). With durable set it also
// fsyncs the file, the least a publish must do: the registry may
// acknowledge an upload only once it is on disk.
func floorWrite(b *testing.B, data []byte, dir string, durable bool) {
	h := sha256.Sum256(data)
	f, err := os.CreateTemp(dir, fmt.Sprintf("floor-%x-", h[:4]))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// ratio accumulates interleaved floor and operation times: wall time, and
// CPU time (user+system of this process, which includes the in-process
// registry), which on a shared machine is steadier than wall time.
type ratio struct {
	floor, op         time.Duration
	floorCPU, opCPU   time.Duration
	bestFloor, bestOp time.Duration
}

// stamp is a point in wall and CPU time.
type stamp struct{ wall, cpu time.Duration }

var epoch = time.Now()

func now() stamp { return stamp{time.Since(epoch), cpuTime()} }

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// add records one floor (t0 to t1) and one operation (t1 to t2).
func (r *ratio) add(t0, t1, t2 stamp) {
	floor, op := t1.wall-t0.wall, t2.wall-t1.wall
	r.floorCPU += t1.cpu - t0.cpu
	r.opCPU += t2.cpu - t1.cpu
	r.floor += floor
	r.op += op
	if r.bestFloor == 0 || floor < r.bestFloor {
		r.bestFloor = floor
	}
	if r.bestOp == 0 || op < r.bestOp {
		r.bestOp = op
	}
}

// report adds the metrics name/floor (total floor time over total
// operation time: 1.0 = as fast as the floor) and name/floor-best (the
// fastest of each, least disturbed by other load), and logs them.
func (r *ratio) report(b *testing.B, name string, size int64) {
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(r.op), name+"-MB/s")
	b.ReportMetric(mbps(r.floor), name+"-floor-MB/s")
	b.ReportMetric(r.floor.Seconds()/r.op.Seconds(), name+"/floor")
	b.ReportMetric(r.bestFloor.Seconds()/r.bestOp.Seconds(), name+"/floor-best")
	b.ReportMetric(r.floorCPU.Seconds()/r.opCPU.Seconds(), name+"/floor-cpu")
	b.Logf("%-8s %5.2f× floor (%.0f MB/s vs floor %.0f MB/s; fastest of %d: %4.2f×; CPU time: %4.2f×)",
		name, r.floor.Seconds()/r.op.Seconds(), mbps(r.op), mbps(r.floor), b.N,
		r.bestFloor.Seconds()/r.bestOp.Seconds(), r.floorCPU.Seconds()/r.opCPU.Seconds())
}

// BenchmarkPublishAndFetch64MB publishes and deploy-fetches a package with
// a 64 MiB main.wasm through the real registry over TLS (client and server
// in this process), each iteration interleaved with its floor, and reports
// each as a fraction of the floor's speed (1.0 = as fast as the floor):
//
//	go test -run '^$' -bench PublishAndFetch64MB -benchtime 5x ./drawbridge/client/
//
// publish = BuildTree (all four digests of every file, as upstream
// clients send) + Publish (the registry verifies, writes and fsyncs);
// its floor is sha256 + write + fsync of the bytes. fetch = FetchBundle
// into memory, verified, and written to the cache; its floor is sha256 +
// write of the bytes. upload is the Publish part of publish alone (what
// the registry and the wire cost; BuildTree's hashing cannot overlap it,
// because every parent names its children's four digests and is uploaded
// first), against the same floor; publish-hash-share is the part of the
// publish time spent in BuildTree.
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

	// Publish every tag first, then fetch them, so that write-back of one
	// phase does not land in the other's measurement.
	var pub, upload, fetch ratio
	var hashT time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := now()
		floorWrite(b, data, scratch, true)
		t1 := now()
		tree, err := BuildTree(dir)
		if err != nil {
			b.Fatal(err)
		}
		t2 := now()
		if err := c.Publish(ctx, PackageSpec{RepoSpec: repo, Tag: tagFor(i)}, tree); err != nil {
			b.Fatal(err)
		}
		t3 := now()
		pub.add(t0, t1, t3)
		// The upload against the same floor: shift the floor to end
		// where the upload starts.
		upload.add(stamp{t2.wall - (t1.wall - t0.wall), t2.cpu - (t1.cpu - t0.cpu)}, t2, t3)
		hashT += t2.wall - t1.wall
	}
	for i := 0; i < b.N; i++ {
		t0 := now()
		floorWrite(b, data, scratch, false)
		t1 := now()
		spec := PackageSpec{RepoSpec: repo, Tag: tagFor(i)}
		if _, err := c.FetchBundle(ctx, spec, &Cache{Dir: filepath.Join(scratch, "cache", string(tagFor(i)))}); err != nil {
			b.Fatal(err)
		}
		fetch.add(t0, t1, now())
	}
	b.StopTimer()
	pub.report(b, "publish", size)
	upload.report(b, "upload", size)
	fetch.report(b, "fetch", size)
	b.ReportMetric(hashT.Seconds()/pub.op.Seconds(), "publish-hash-share")
}

func tagFor(i int) types.TagName { return types.TagName(fmt.Sprintf("1.0.%d", i)) }
