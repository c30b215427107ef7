package store

// Blob and Registry against a real S3 server: the Versity S3 Gateway
// (github.com/versity/versitygw, Apache-2.0) with its posix backend,
// run as its own process on 127.0.0.1. gofakes3 (s3_test.go) ignores
// If-None-Match on CompleteMultipartUpload, so there a 16 MiB node raced
// by two replicas was unverified; versitygw enforces the condition on
// PutObject and on CompleteMultipartUpload, which is what AWS S3
// documents.
//
// The gateway is found as $ENARX_VERSITYGW, else versitygw on PATH, else
// built with `go install` (module proxy and build cache) into the test's
// temporary directory. Under CI=true a failed build fails the test.
//
// Between the clients and the gateway sits condProxy, a reverse proxy
// that holds each conditional write (If-None-Match: *) to a chosen key
// until every racer's has arrived, so each has passed its Exists and
// stat checks: the race is then decided by the S3 server's condition
// alone, deterministically. It also counts the conditional writes sent
// and refused (412), to show the condition, not an earlier check, decided.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/testutil"
)

// versityGWModule is the gateway's release used when none is installed.
const versityGWModule = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

const (
	vgwAccess = "AKIDENARXTEST"
	vgwSecret = "enarx-test-secret"
)

func versityGWBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ENARX_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", versityGWModule)
	cmd.Dir = dir // outside this module: install the gateway's own go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		testutil.NeedHost(t, "a real S3 server: go install %s: %v\n%s", versityGWModule, err, out)
	}
	return filepath.Join(dir, "versitygw")
}

// startVersityGW runs a gateway over a fresh posix directory and returns
// its endpoint URL; it is stopped when the test ends.
func startVersityGW(t *testing.T) string {
	t.Helper()
	bin := versityGWBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--access", vgwAccess, "--secret", vgwSecret, "--port", addr, "--quiet", "posix", t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for {
		select {
		case err := <-exited:
			t.Fatalf("versitygw exited: %v\n%s", err, logs.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// condProxy forwards to the gateway, holding conditional writes to held
// keys until n of them have arrived, and counting conditional writes.
type condProxy struct {
	srv *http.Server
	url string

	mu      sync.Mutex
	holds   map[string]*hold // object key (without the bucket) → hold
	sent    map[string]int   // conditional writes per object key
	refused map[string]int   // ... answered 412
	posts   map[string]int   // ... of them CompleteMultipartUpload
}

type hold struct {
	n, arrived int
	release    chan struct{}
}

func newCondProxy(t *testing.T, target string) *condProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &condProxy{holds: map[string]*hold{}, sent: map[string]int{}, refused: map[string]int{}, posts: map[string]int{}}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // SigV4 signed the client's Host
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cond := r.Header.Get("If-None-Match") == "*" &&
			(r.Method == http.MethodPut && !r.URL.Query().Has("partNumber") ||
				r.Method == http.MethodPost && r.URL.Query().Has("uploadId"))
		if !cond {
			rp.ServeHTTP(w, r)
			return
		}
		key := strings.TrimPrefix(r.URL.Path, "/"+s3TestBucket+"/")
		if err := p.wait(key); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(sw, r)
		p.mu.Lock()
		p.sent[key]++
		if r.Method == http.MethodPost {
			p.posts[key]++
		}
		// CompleteMultipartUpload may answer 200 with an error body;
		// versitygw answers a failed condition with 412.
		if sw.code == http.StatusPreconditionFailed {
			p.refused[key]++
		}
		p.mu.Unlock()
	})}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// hold makes the next n conditional writes of key wait for each other.
func (p *condProxy) hold(key string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holds[key] = &hold{n: n, release: make(chan struct{})}
}

func (p *condProxy) wait(key string) error {
	p.mu.Lock()
	h := p.holds[key]
	if h == nil {
		p.mu.Unlock()
		return nil
	}
	h.arrived++
	if h.arrived == h.n {
		close(h.release)
	}
	p.mu.Unlock()
	select {
	case <-h.release:
		return nil
	case <-time.After(60 * time.Second):
		return fmt.Errorf("condProxy: only %d of %d conditional writes of %s arrived", h.arrived, h.n, key)
	}
}

// counts returns the conditional writes of key: sent, refused with 412,
// and how many were CompleteMultipartUpload.
func (p *condProxy) counts(key string) (sent, refused, posts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[key], p.refused[key], p.posts[key]
}

// bucket opens the test bucket through endpoint with an S3 client of its
// own, as a separate replica would.
func vgwBucket(t *testing.T, endpoint string) (*blob.Bucket, *s3.Client) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := aws.Config{
		Region: "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: vgwAccess, SecretAccessKey: vgwSecret, Source: "test"}, nil
		}),
		HTTPClient: &http.Client{Transport: tr},
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
	b, err := s3blob.OpenBucket(ctx, client, s3TestBucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, client
}

// newVersityS3 starts a gateway with the test bucket and a proxy before it.
func newVersityS3(t *testing.T) *condProxy {
	t.Helper()
	gw := startVersityGW(t)
	_, client := vgwBucket(t, gw)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3TestBucket)}); err != nil {
		t.Fatalf("versitygw: create bucket: %v", err)
	}
	return newCondProxy(t, gw)
}

func (p *condProxy) blob(t *testing.T) *Blob {
	b, _ := vgwBucket(t, p.url)
	s := NewBlob(b)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestVersityGWConditionalCreate: Blobs with their own S3 clients (as
// replicas) Create one key at once, all past their Exists check. Below
// 16 MiB the condition rides on PutObject, at 17 MiB on
// CompleteMultipartUpload (the case gofakes3 cannot check). Exactly one
// wins, the server refused the others' conditional writes, and the stored
// object is the winner's.
func TestVersityGWConditionalCreate(t *testing.T) {
	p := newVersityS3(t)
	for _, tc := range []struct {
		name      string
		size, n   int
		multipart bool
	}{
		{"put-1KiB", 1 << 10, 4, false},
		{"multipart-17MiB", 17 << 20, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "race-" + tc.name
			p.hold(key+"/"+blobContent, tc.n)
			var (
				wg     sync.WaitGroup
				errs   = make([]error, tc.n)
				metas  = make([]types.Meta, tc.n)
				bodies = make([][]byte, tc.n)
			)
			for i := range tc.n {
				bodies[i] = testutil.DeterministicBytes(fmt.Sprintf("%s replica %d", key, i), tc.size)
				d, n := types.Compute(bodies[i])
				metas[i] = types.Meta{Digest: d, Length: n, Type: "application/wasm"}
				s := p.blob(t)
				wg.Go(func() { errs[i] = s.Create(ctx, key, metas[i], bytes.NewReader(bodies[i])) })
			}
			wg.Wait()
			winner := oneWinner(t, errs)
			sent, refused, posts := p.counts(key + "/" + blobContent)
			if sent != tc.n || refused != tc.n-1 {
				t.Fatalf("conditional writes: %d sent, %d refused with 412; want %d, %d", sent, refused, tc.n, tc.n-1)
			}
			if tc.multipart && posts != tc.n || !tc.multipart && posts != 0 {
				t.Fatalf("%d of %d conditional writes were CompleteMultipartUpload (multipart %v)", posts, sent, tc.multipart)
			}
			o, err := p.blob(t).Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Content.Close()
			got, err := io.ReadAll(o.Content)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, bodies[winner]) || !o.Meta.Equal(metas[winner]) {
				t.Fatalf("stored object (%d bytes) is not the winner's", len(got))
			}
		})
	}
}

// TestVersityGWTwoRegistries: two Registries (as two drawbridge replicas)
// on one bucket publish the same tag with different trees, each holding a
// 17 MiB file, at once: one tag wins. Both then upload the winner's tree
// (a client retrying through the other replica), the 17 MiB node from
// both at once: the server stores it once (one upload wins, the other
// learns it existed), the tag becomes visible through both replicas with
// the winner's content, and the loser's tree is refused.
func TestVersityGWTwoRegistries(t *testing.T) {
	p := newVersityS3(t)
	regs := [2]*Registry{NewRegistry(p.blob(t)), NewRegistry(p.blob(t))}
	ref := setupRepo(t, regs[0])
	const bigSize = 17 << 20
	var trees [2][]types.Node
	for i := range trees {
		fsys := fstest.MapFS{
			"p/main.wasm":  {Data: append([]byte("\x00asm\x01\x00\x00\x00"), testutil.DeterministicBytes(fmt.Sprint("module ", i), bigSize)...)},
			"p/Enarx.toml": {Data: []byte("args = []\n")},
		}
		nodes, err := types.BuildTree(fsys, "p", nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes[0].Entry.Extra = nil
		for j := range nodes {
			if nodes[j].File != "" {
				nodes[j].Content = fsys[nodes[j].File].Data
			}
		}
		trees[i] = nodes
	}

	tag := ref.key() + "/" + blobContent
	p.hold(tag, 2)
	var (
		wg   sync.WaitGroup
		errs = make([]error, 2)
	)
	for i := range 2 {
		wg.Go(func() {
			m, b := tagBody(t, trees[i])
			_, errs[i] = regs[i].CreateTag(ctx, ref, m, b)
		})
	}
	wg.Wait()
	winner := oneWinner(t, errs)
	if sent, refused, _ := p.counts(tag); sent != 2 || refused != 1 {
		t.Fatalf("tag: %d conditional writes sent, %d refused; want 2, 1", sent, refused)
	}

	var big types.Node
	for _, n := range trees[winner] {
		if n.Path.String() == "main.wasm" {
			big = n
		}
	}
	if int64(len(big.Content)) < 16<<20 {
		t.Fatalf("main.wasm is %d bytes", len(big.Content))
	}
	// The rest of the winner's tree first (parents before children), so
	// that main.wasm is the node that completes it.
	for _, n := range trees[winner] {
		if n.Path.String() == "main.wasm" {
			continue
		}
		if _, err := regs[1-winner].CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
			t.Fatalf("%s: %v", n.Path, err)
		}
	}
	if _, err := regs[winner].Tag(ctx, ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag visible before its tree is complete: %v", err)
	}
	bigKey := nodeKey(ref.key(), big.Path) + "/" + blobContent
	p.hold(bigKey, 2)
	existed := make([]bool, 2)
	for i := range 2 {
		wg.Go(func() {
			existed[i], errs[i] = regs[i].CreateNode(ctx, ref, big.Path, big.Entry.Meta, bytes.NewReader(big.Content))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d uploading the winner's main.wasm: %v", i, err)
		}
	}
	if existed[0] == existed[1] {
		t.Fatalf("main.wasm: existed = %v; want one upload stored and one told it existed", existed)
	}
	if sent, refused, posts := p.counts(bigKey); sent != 2 || refused != 1 || posts != 2 {
		t.Fatalf("main.wasm: %d conditional writes (%d CompleteMultipartUpload), %d refused; want 2 (2), 1", sent, posts, refused)
	}
	// The loser's main.wasm does not fit the winner's tag.
	for _, n := range trees[1-winner] {
		if n.Path.String() == "main.wasm" {
			if _, err := regs[1-winner].CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err == nil {
				t.Fatal("the losing tree's main.wasm was accepted")
			}
		}
	}
	for i, r := range regs {
		o, err := r.Node(ctx, ref, big.Path)
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		got, err := io.ReadAll(o.Content)
		o.Content.Close()
		if err != nil || !bytes.Equal(got, big.Content) {
			t.Fatalf("replica %d reads main.wasm (%d bytes, %v): not the winner's", i, len(got), err)
		}
		if _, err := r.Tag(ctx, ref); err != nil {
			t.Fatalf("replica %d: the complete tag is not visible: %v", i, err)
		}
	}
}
