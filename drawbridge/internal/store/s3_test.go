package store

// Blob on the S3 wire protocol: gocloud.dev/blob/s3blob (aws-sdk-go-v2)
// talking HTTP to gofakes3 (in-memory s3mem backend) on 127.0.0.1.
//
// What gofakes3 v1.2.0 does with the conditional write Blob relies on
// (s3blob turns WriterOptions.IfNotExist into If-None-Match: *):
//
//   - PutObject (every object below 16 MiB, the transfer manager's
//     multipart threshold): enforced. createObject parses If-None-Match and
//     s3mem.PutObject checks "exists?" and stores under one backend lock,
//     so of concurrent conditional PUTs of one key exactly one gets 200 and
//     the rest 412 PreconditionFailed, which s3blob maps to
//     gcerrors.FailedPrecondition and Blob to ErrExists.
//     TestS3ConditionalCreateAcrossBlobs checks that across separate Blob
//     values (as separate replicas would be).
//   - CompleteMultipartUpload (objects of 16 MiB or more; s3blob/the
//     transfer manager sends If-None-Match: * only on this request):
//     ignored. uploader.CompleteMultipartUpload stores with nil conditions,
//     so a second complete silently replaces the first.
//
// Not verified against gofakes3, therefore: (1) that two replicas
// (separate processes or Blob values) racing to Create one key of 16 MiB
// or more see exactly one winner; within one process Blob's key lock plus
// its Exists check serialise such Creates (TestS3LargeObjectMultipart),
// across Blobs the fake lets both complete. versitygw_test.go verifies it
// against a real S3 server (the Versity S3 Gateway). (2) Real stores'
// conditional writes other than versitygw's: what passes here is
// gofakes3's reading of the protocol. AWS S3 documents If-None-Match: * on PutObject and on
// CompleteMultipartUpload; MinIO and other S3-compatible stores have to be
// checked individually, and a store that ignores the header makes a
// concurrent second writer silently replace the first. (3) Real S3 limits
// and quirks the fake does not model (e.g. gofakes3 applies the 2 KiB
// user-metadata limit to all x-amz-* headers, not just x-amz-meta-*).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/enarx-go/enarx/drawbridge/types"
)

const s3TestBucket = "drawbridge"

// fakeS3 is a gofakes3 server on 127.0.0.1 that counts the PUTs it
// answers, by whether they carried If-None-Match: * and their status.
type fakeS3 struct {
	srv *httptest.Server

	mu             sync.Mutex
	condPuts       int // PUT of an object (not a part) with If-None-Match: *
	condPutsFailed int // ... answered 412
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket(s3TestBucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(mem, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	f := &fakeS3{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cond := r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" &&
			!r.URL.Query().Has("partNumber")
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		if cond {
			f.mu.Lock()
			f.condPuts++
			if sw.code == http.StatusPreconditionFailed {
				f.condPutsFailed++
			}
			f.mu.Unlock()
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.written {
		s.code, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(p)
}

func (f *fakeS3) counts() (condPuts, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.condPuts, f.condPutsFailed
}

// bucket opens the fake's bucket through s3blob with a client of its own
// (its own connection pool), as another replica would: path-style
// addressing, static credentials (requests are SigV4-signed as against
// AWS), region us-east-1.
func (f *fakeS3) bucket(t *testing.T) *blob.Bucket {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
		HTTPClient: &http.Client{Transport: tr},
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(f.srv.URL)
		o.UsePathStyle = true
	})
	b, err := s3blob.OpenBucket(ctx, client, s3TestBucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fakeS3) blob(t *testing.T) *Blob {
	s := NewBlob(f.bucket(t))
	t.Cleanup(func() { s.Close() })
	return s
}

// s3Backend is the "s3" entry of backends(): the whole Backend and
// Registry suite runs against it.
func s3Backend(t *testing.T) Backend { return newFakeS3(t).blob(t) }

// gate is a body whose first Read waits until n gates have been read, so
// that n concurrent Creates have all passed Blob's Exists check before any
// of them uploads: the race is then decided by the store alone.
type gate struct {
	r       io.Reader
	once    sync.Once
	arrived *atomic.Int32
	n       int32
	release chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	var err error
	g.once.Do(func() {
		if g.arrived.Add(1) == g.n {
			close(g.release)
		}
		select {
		case <-g.release:
		case <-time.After(10 * time.Second):
			err = errors.New("gate: not every writer got past the Exists check")
		}
	})
	if err != nil {
		return 0, err
	}
	return g.r.Read(p)
}

// TestS3ConditionalCreateAcrossBlobs: several Blob values on one bucket,
// each with its own S3 client, Create one key at once, all past their
// Exists check, so Blob's key lock (per Blob) cannot decide. The
// store's If-None-Match: * must: exactly one wins, the others get
// ErrExists, and the stored object is the winner's.
func TestS3ConditionalCreateAcrossBlobs(t *testing.T) {
	f := newFakeS3(t)
	const n = 4
	var (
		arrived atomic.Int32
		release = make(chan struct{})
		wg      sync.WaitGroup
		errs    [n]error
		metas   [n]types.Meta
		bodies  [n][]byte
	)
	for i := range n {
		metas[i], bodies[i] = record(fmt.Sprintf("replica %d's body", i), "text/plain")
		s := f.blob(t)
		g := &gate{r: bytes.NewReader(bodies[i]), arrived: &arrived, n: n, release: release}
		wg.Go(func() { errs[i] = s.Create(ctx, "race", metas[i], g) })
	}
	wg.Wait()
	winner := oneWinner(t, errs[:])
	// Every Create reached the store with the condition; it refused all
	// but one.
	if puts, failed := f.counts(); puts != n || failed != n-1 {
		t.Fatalf("conditional PUTs: %d sent, %d refused; want %d, %d", puts, failed, n, n-1)
	}
	o, err := f.blob(t).Open(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Content.Close()
	got, _ := io.ReadAll(o.Content)
	if !bytes.Equal(got, bodies[winner]) || !o.Meta.Equal(metas[winner]) {
		t.Fatalf("stored %q, not the winner's %q", got, bodies[winner])
	}
}

// TestS3ObjectAttributes checks what the suite does not look at: the
// object's S3 attributes (Content-Type, user metadata key as the SDK
// returns it, lowercased) and the layout of keys in the bucket.
func TestS3ObjectAttributes(t *testing.T) {
	f := newFakeS3(t)
	s := f.blob(t)
	m, body := record(`{"a":1}`, "application/json")
	if err := s.Create(ctx, "users/alice", m, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	a, err := f.bucket(t).Attributes(ctx, "users/alice/"+blobContent)
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != "application/json" || a.Size != int64(len(body)) {
		t.Fatalf("content type %q, size %d", a.ContentType, a.Size)
	}
	if _, ok := a.Metadata[blobMetaKey]; !ok || len(a.Metadata) != 1 {
		t.Fatalf("metadata %v", a.Metadata)
	}
	got, err := s.Stat(ctx, "users/alice")
	if err != nil || !got.Equal(m) {
		t.Fatalf("stat %v %v", got, err)
	}
	if _, err := s.Stat(ctx, "users/bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := s.Open(ctx, "users/bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if names, err := s.List(ctx, "users"); err != nil || len(names) != 1 || names[0] != "alice" {
		t.Fatalf("list %v %v", names, err)
	}
	if names, err := s.List(ctx, "nothing"); err != nil || len(names) != 0 {
		t.Fatalf("list of an absent prefix %v %v", names, err)
	}
}

// TestS3LargeObjectMultipart covers objects at or above the transfer
// manager's 16 MiB multipart threshold, which s3blob uploads in parts:
// a body that fails after the first parts were sent leaves no object;
// the object and its Meta round-trip; and within one process concurrent
// Creates of one key have exactly one winner. "Leaves no object" is all
// that is claimed: the transfer manager's AbortMultipartUpload uses the
// write context, which Blob has cancelled, so the incomplete upload and
// its parts stay in the bucket (invisible to Get/List of objects) until a
// lifecycle rule (AbortIncompleteMultipartUpload) removes them. The last holds by Blob's
// key lock and Exists check alone: gofakes3 ignores If-None-Match on
// CompleteMultipartUpload (see the top of this file), so across
// processes it stays unverified.
func TestS3LargeObjectMultipart(t *testing.T) {
	f := newFakeS3(t)
	s := f.blob(t)
	const size = 17 << 20
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	m, _ := types.Compute(big)
	meta := types.Meta{Digest: m, Length: size, Type: "application/wasm"}

	err := s.Create(ctx, "big", meta, io.MultiReader(bytes.NewReader(big), errReader{}))
	if err == nil {
		t.Fatal("failed body accepted")
	}
	if _, err := s.Stat(ctx, "big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted multipart write is visible: %v", err)
	}

	other := bytes.Clone(big)
	other[size-1] = 'x'
	om, _ := types.Compute(other)
	metas := [2]types.Meta{meta, {Digest: om, Length: size, Type: "application/wasm"}}
	bodies := [2][]byte{big, other}
	var errs [2]error
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { errs[i] = s.Create(ctx, "big", metas[i], bytes.NewReader(bodies[i])) })
	}
	wg.Wait()
	winner := oneWinner(t, errs[:])
	o, err := s.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Content.Close()
	got, _ := io.ReadAll(o.Content)
	if !bytes.Equal(got, bodies[winner]) || !o.Meta.Equal(metas[winner]) {
		t.Fatalf("stored object (%d bytes) is not the winner's", len(got))
	}
	if puts, _ := f.counts(); puts != 0 {
		// All uploads went multipart: the condition rode on
		// CompleteMultipartUpload (a POST), never on a plain PUT.
		t.Fatalf("%d conditional single PUTs for a %d-byte object", puts, size)
	}
}
