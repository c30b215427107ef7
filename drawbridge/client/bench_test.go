package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/drawbridgetest"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// startRegistry starts the real registry in-process over TLS on 127.0.0.1
// and returns a client with a token for user "bench" (registered, with a
// public repository "app"). configure, if given, adjusts the server before
// it starts.
func startRegistry(b testing.TB, configure ...func(*httptest.Server)) (*Client, RepoSpec) {
	b.Helper()
	reg := drawbridgetest.Start(b, configure...)
	host := reg.Host
	c, err := New(host, Options{CABundle: reg.CA, Token: reg.Token(b, "bench|user")})
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

// floorWrite is the least a verifying fetch-to-disk must do, as fast as two
// cores allow: hash the bytes once (SHA-256) on one goroutine while another
// writes them to a file that stays (page cache, like the fetch's cache
// entry, which stays too). With durable set it also fsyncs the file, the
// least a publish must do: the registry may acknowledge an upload only
// once it is on disk.
func floorWrite(b *testing.B, data []byte, dir string, durable bool) {
	hashed := make(chan [32]byte, 1)
	go func() { hashed <- sha256.Sum256(data) }()
	f, err := os.CreateTemp(dir, "floor-")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	defer func() { <-hashed }()
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
	each              []float64 // floor/op of each iteration
}

// median is the median of the per-iteration ratios: each operation is
// compared with the floor measured just before it, under the same disk
// and machine state, and the median drops the iterations a burst of
// write-back or another process disturbed.
func (r *ratio) median() float64 {
	if len(r.each) == 0 {
		return 0
	}
	e := slices.Clone(r.each)
	slices.Sort(e)
	if len(e)%2 == 1 {
		return e[len(e)/2]
	}
	return (e[len(e)/2-1] + e[len(e)/2]) / 2
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
	r.each = append(r.each, floor.Seconds()/op.Seconds())
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
	mbps := func(d time.Duration) float64 { return float64(size) * float64(len(r.each)) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(r.op), name+"-MB/s")
	b.ReportMetric(mbps(r.floor), name+"-floor-MB/s")
	b.ReportMetric(r.floor.Seconds()/r.op.Seconds(), name+"/floor")
	b.ReportMetric(r.bestFloor.Seconds()/r.bestOp.Seconds(), name+"/floor-best")
	b.ReportMetric(r.median(), name+"/floor-median")
	cpu := "" // not measured when the operations ran in other processes
	if r.opCPU > 0 {
		b.ReportMetric(r.floorCPU.Seconds()/r.opCPU.Seconds(), name+"/floor-cpu")
		cpu = fmt.Sprintf("; CPU time: %4.2f×", r.floorCPU.Seconds()/r.opCPU.Seconds())
	}
	b.Logf("%-9s %5.2f× floor (%.0f MB/s vs floor %.0f MB/s; median of %d: %4.2f×; fastest: %4.2f×%s)",
		name, r.floor.Seconds()/r.op.Seconds(), mbps(r.op), mbps(r.floor), len(r.each), r.median(),
		r.bestFloor.Seconds()/r.bestOp.Seconds(), cpu)
}

// BenchmarkPublishAndFetch64MB publishes and deploy-fetches a package with
// a 64 MiB main.wasm through the real registry over TLS (client and server
// in this process), each iteration interleaved with its floor, and reports
// each as a fraction of the floor's speed (1.0 = as fast as the floor):
//
//		go test -run '^$' -bench PublishAndFetch64MB -benchtime 10x ./drawbridge/client/
//
//	  - upload: Publish of a built tree (the registry verifies, writes and
//	    fsyncs); floor: sha256 beside write + fsync of the bytes (two
//	    goroutines: every floor here is the best two cores allow).
//	  - publish: BuildTree + Publish, against the same floor. BuildTree
//	    computes the four digests (SHA-224/256/384/512) the format gives every
//	    node, as upstream clients do; it cannot overlap the upload, because
//	    every parent names its children's digests and is uploaded first.
//	    publish-hash-share is the part of the publish time spent in it.
//	  - fetch: FetchBundle as enarx deploy runs it: into memory, verified,
//	    and written to the local cache; floor: sha256 beside the write of
//	    the bytes to a file that stays, as the cache entry stays.
//	  - fetch-mem: FetchBundle without a cache (what a Keep fetching by
//	    itself does); floor: read of the file, hashed chunk by chunk behind
//	    the read.
//
// Each phase runs to its end before the next starts, so that write-back
// of one does not land in another's measurement.
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

	var pub, upload, fetch, fetchMem ratio
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
	mainWasm := filepath.Join(dir, "main.wasm")
	for i := 0; i < b.N; i++ {
		t0 := now()
		floorRead(b, mainWasm)
		t1 := now()
		if _, err := c.FetchBundle(ctx, PackageSpec{RepoSpec: repo, Tag: tagFor(i)}, nil); err != nil {
			b.Fatal(err)
		}
		fetchMem.add(t0, t1, now())
	}
	b.StopTimer()
	upload.report(b, "upload", size)
	pub.report(b, "publish", size)
	fetch.report(b, "fetch", size)
	fetchMem.report(b, "fetch-mem", size)
	b.ReportMetric(hashT.Seconds()/pub.op.Seconds(), "publish-hash-share")
}

// floorRead is the least that loading a local package for a Keep does, as
// fast as two cores allow: read the file into memory in 1 MiB chunks while
// another goroutine hashes (SHA-256) the chunks already read, as a deploy
// from a file:// URL must.
func floorRead(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, st.Size())
	chunks := make(chan []byte, 64)
	done := make(chan struct{})
	go func() {
		h := sha256.New()
		for c := range chunks {
			h.Write(c)
		}
		h.Sum(nil)
		close(done)
	}()
	for off := 0; off < len(data); {
		n, err := f.Read(data[off:min(off+1<<20, len(data))])
		if n > 0 {
			chunks <- data[off : off+n]
			off += n
		}
		if err != nil {
			break
		}
	}
	close(chunks)
	<-done
}

func tagFor(i int) types.TagName { return types.TagName(fmt.Sprintf("1.0.%d", i)) }
