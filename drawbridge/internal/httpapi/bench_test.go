package httpapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
)

const benchSize = 64 << 20

// floorWrite is the publish floor, the best two cores allow: hash the
// bytes with sha256 on one goroutine while another writes them durably
// (write + fsync) to a file on the same file system as the store (the
// registry, too, hashes beside the transfer). It returns the time taken
// and the file.
func floorWrite(b *testing.B, dir string, data []byte) (time.Duration, string) {
	start := time.Now()
	f, err := os.CreateTemp(dir, "floor")
	if err != nil {
		b.Fatal(err)
	}
	hashed := make(chan struct{})
	go func() { sha256.Sum256(data); close(hashed) }()
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	f.Sync()
	f.Close()
	<-hashed
	return time.Since(start), f.Name()
}

// floorRead is the fetch floor, the best two cores allow: read the file in
// 1 MiB chunks while another goroutine hashes the chunk read before.
func floorRead(b *testing.B, path string) time.Duration {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	pipelinedHash(f)
	f.Close()
	return time.Since(start)
}

// pipelinedHash reads r in 1 MiB chunks and hashes each on a second
// goroutine while the next is read.
func pipelinedHash(r io.Reader) []byte {
	const chunk = 1 << 20
	bufs := make(chan []byte, 2)
	free := make(chan []byte, 3)
	for range 3 {
		free <- make([]byte, chunk)
	}
	sum := make(chan []byte)
	go func() {
		h := sha256.New()
		for b := range bufs {
			h.Write(b)
			free <- b[:cap(b)]
		}
		sum <- h.Sum(nil)
	}()
	for {
		b := <-free
		n, err := io.ReadFull(r, b)
		if n > 0 {
			bufs <- b[:n]
		} else {
			free <- b
		}
		if err != nil {
			break
		}
	}
	close(bufs)
	return <-sum
}

// BenchmarkPublishFetch64MB measures, in one run, a 64 MiB tree node PUT
// (TLS, streaming verification against the parent entry's sha-256, fsync
// + rename) and GET (TLS; the client reads the body into memory and
// verifies its sha-256 as a deploy does, types.ReadVerified), each
// interleaved with its floor: sha256 beside write + fsync of the same bytes,
// and read beside sha256 of that file (each on two goroutines, as the
// registry works: the best two cores allow). Every PUT runs before the first GET, so that
// the disk writing back uploads does not disturb the fetches. Reported
// ratios are floor time / operation time: 1.0 means as fast as hashing and
// writing (or reading) the bytes locally; the goal is ≥ 0.8.
func BenchmarkPublishFetch64MB(b *testing.B) {
	e := newEnv(b)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	data := make([]byte, benchSize)
	rand.Read(data)
	entry, err := types.FileEntry(bytes.NewReader(data), types.WasmType)
	if err != nil {
		b.Fatal(err)
	}
	tagBody, _ := entry.MarshalJSON()
	floorDir := b.TempDir()
	dst := make([]byte, benchSize)
	var put, get, fput, fget time.Duration
	var floorFiles []string
	b.SetBytes(benchSize)
	n := 0
	for b.Loop() {
		tag := fmt.Sprintf("/alice/pub/_tag/1.0.%d", n)
		n++
		e.expect(e.putEntity(e.anon, tag, e.token, types.EntryType, tagBody), 201, "tag")
		d, f := floorWrite(b, floorDir, data)
		fput += d
		floorFiles = append(floorFiles, f)
		start := time.Now()
		r := e.req(e.anon, "PUT", tag+"/tree", e.token, data, map[string]string{"Content-Type": entry.Type, "Content-Digest": entry.Digest.String()})
		put += time.Since(start)
		e.expect(r, 201, "PUT 64 MiB")
	}
	for i := range n {
		fget += floorRead(b, floorFiles[i])
		start := time.Now()
		res, err := e.anon.Get(fmt.Sprintf("%s/alice/pub/_tag/1.0.%d/tree", e.url, i))
		if err != nil {
			b.Fatal(err)
		}
		// As a deploy fetches: into memory, verified against the entry.
		err = types.ReadVerified(res.Body, dst, types.Digests{types.SHA256: entry.Digest[types.SHA256]})
		res.Body.Close()
		get += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(n) * benchSize / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(put), "put-MB/s")
	b.ReportMetric(mbps(fput), "floor-write-MB/s")
	b.ReportMetric(fput.Seconds()/put.Seconds(), "put/floor")
	b.ReportMetric(mbps(get), "get-MB/s")
	b.ReportMetric(mbps(fget), "floor-read-MB/s")
	b.ReportMetric(fget.Seconds()/get.Seconds(), "get/floor")
	b.Logf("put  %5.2f× floor (%.0f MB/s vs sha256+write+fsync %.0f MB/s)", fput.Seconds()/put.Seconds(), mbps(put), mbps(fput))
	b.Logf("get  %5.2f× floor (%.0f MB/s vs read+sha256 %.0f MB/s)", fget.Seconds()/get.Seconds(), mbps(get), mbps(fget))
}

// BenchmarkConcurrentReaders runs 100 concurrent clients fetching a 1 MiB
// node of a public repository, and reports the aggregate throughput and
// its ratio to the floor: the same 100 reads and SHA-256s of the file from
// disk spread over every core (floorReadMany), the best the hardware
// allows without TLS and HTTP.
func BenchmarkConcurrentReaders(b *testing.B) {
	e := newEnv(b)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	const size = 1 << 20
	const readers = 100
	data := make([]byte, size)
	rand.Read(data)
	nodes, err := types.BuildTree(mapFS(data), "p", nil)
	if err != nil {
		b.Fatal(err)
	}
	nodes[1].Content = data
	e.publish(e.anon, "/alice/pub", "1.0.0", e.token, nodes)
	path := e.url + "/alice/pub/_tag/1.0.0/tree/main.wasm"
	floorFile := filepath.Join(b.TempDir(), "floor")
	os.WriteFile(floorFile, data, 0o600)
	// Each reader has its own connection pool (its own TLS session), like
	// 100 separate Keeps.
	clients := make([]*http.Client, readers)
	dsts := make([][]byte, readers)
	for i := range clients {
		clients[i] = e.pki.client()
		dsts[i] = make([]byte, size)
	}
	var served, floor time.Duration
	b.SetBytes(size * readers)
	b.ResetTimer()
	for b.Loop() {
		floor += floorReadMany(b, floorFile, readers)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range readers {
			wg.Go(func() {
				res, err := clients[i].Get(path)
				if err != nil {
					b.Error(err)
					return
				}
				err = types.ReadVerified(res.Body, dsts[i], types.Digests{types.SHA256: nodes[1].Entry.Digest[types.SHA256]})
				res.Body.Close()
				if res.StatusCode != 200 || err != nil {
					b.Errorf("reader %d: status %d, %v", i, res.StatusCode, err)
				}
			})
		}
		wg.Wait()
		served += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*size*readers/served.Seconds()/1e6, "served-MB/s")
	b.ReportMetric(floor.Seconds()/served.Seconds(), "served/floor")
	b.Logf("100 readers %5.2f× floor (%.0f MB/s aggregate vs %.0f MB/s for read+sha256 on every core)",
		floor.Seconds()/served.Seconds(), float64(b.N)*size*readers/served.Seconds()/1e6, float64(b.N)*size*readers/floor.Seconds()/1e6)
}

// floorReadMany reads and hashes path n times on GOMAXPROCS goroutines,
// each with one reused buffer: a 1 MiB file is one chunk, so pipelining
// one file's read and hash (floorRead) gains nothing, while reads of
// different files run side by side.
func floorReadMany(b *testing.B, path string, n int) time.Duration {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for range jobs {
				f, err := os.Open(path)
				if err != nil {
					b.Error(err)
					return
				}
				h := sha256.New()
				if _, err := io.CopyBuffer(h, f, buf); err != nil {
					b.Error(err)
				}
				f.Close()
				h.Sum(nil)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
