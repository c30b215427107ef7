package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/enarx-go/enarx/drawbridge/types"
)

const (
	blobContent = "content"
	// blobMetaKey is the blob metadata key holding the object's Meta as
	// JSON (ASCII: media types are validated printable ASCII).
	blobMetaKey = "drawbridge-meta"
)

// Blob is a Backend on a gocloud.dev blob bucket (S3, GCS, Azure, or the
// fileblob/memblob drivers). Each object is one blob at "<key>/content"
// whose metadata carries its Meta, so an object and its Meta appear
// together in one write.
//
// Guarantees: a blob write becomes visible only when it completes; a
// failed or cancelled upload is aborted (the write context is cancelled
// before Close) and leaves no object. On S3 an upload of 16 MiB or more is
// a multipart upload, and the SDK's abort of a failed one uses the
// cancelled context, so its parts stay in the bucket, invisible but
// billed: give the bucket a lifecycle rule AbortIncompleteMultipartUpload
// (docs/drawbridge.md). "Exactly one of two concurrent Creates
// wins" relies on the driver's IfNotExist conditional write: S3
// (If-None-Match: *; needs a store that implements conditional writes),
// GCS (DoesNotExist precondition) and Azure (If-None-Match) enforce it
// across processes, so several registry replicas can share one bucket.
// memblob enforces it within one process. fileblob's check is not atomic
// (stat, then rename, without a shared lock); Blob therefore also
// serialises Creates of one key within its own process, which makes
// fileblob safe for a single replica but not for several sharing a
// directory. With a driver that ignores IfNotExist, a concurrent second
// writer in another process would silently replace the first.
type Blob struct {
	b     *blob.Bucket
	locks keyLocks
}

// NewBlob returns a Backend on bucket; Close closes the bucket.
func NewBlob(bucket *blob.Bucket) *Blob { return &Blob{b: bucket} }

// keyLocks serialises operations on equal keys within one process.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// Close closes the bucket.
func (s *Blob) Close() error { return s.b.Close() }

// The S3 driver's multipart uploads (bodies of s3Multipart bytes or more):
// part size and concurrency of a pipelined upload (the driver's defaults)
// and the part size of one that is not (the least S3 allows), which
// uploads one part at a time.
const (
	s3Multipart    = 16 << 20
	s3Part         = 8 << 20
	s3Concurrency  = 5
	s3PlainPart    = 5 << 20
	blobCopyBuffer = 1 << 20 // copyBufs
)

// pipelineBuffers implements pipelineCoster: the copy buffer and, on S3,
// the parts of a multipart upload.
func (s *Blob) pipelineBuffers(length int64) int64 {
	if length < pipelineMin {
		return 0
	}
	if length < s3Multipart {
		return blobCopyBuffer
	}
	return blobCopyBuffer + (s3Concurrency+1)*s3Part
}

// Create implements Backend.
func (s *Blob) Create(ctx context.Context, key string, meta types.Meta, body io.Reader) error {
	return s.write(ctx, key, meta, body, false)
}

// Replace implements Backend: an unconditional write of the object's blob,
// which becomes visible only when it completes (content and meta together);
// a failed body aborts it and the old blob stays. Replaces of one key are
// serialised within the process; across replicas the last complete write
// wins (the Registry only ever replaces a node with content verified against
// the same entry, so racing replacements write the same bytes).
func (s *Blob) Replace(ctx context.Context, key string, meta types.Meta, body io.Reader) error {
	return s.write(ctx, key, meta, body, true)
}

// write stores body with meta as the blob of key: a new one (Create), or in
// place of the one there (replace). Nothing changes unless body is read to
// its end and the write completes.
func (s *Blob) write(ctx context.Context, key string, meta types.Meta, body io.Reader, replace bool) error {
	defer s.locks.lock(key)()
	verb := "writing"
	if replace {
		verb = "replacing"
	}
	if ok, err := s.b.Exists(ctx, key+"/"+blobContent); err != nil {
		return fmt.Errorf("checking %s: %w", key, err)
	} else if ok && !replace {
		return fmt.Errorf("%s: %w", key, ErrExists)
	} else if !ok && replace {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	mj, _ := meta.MarshalJSON()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pipelined := pipelining(ctx) && meta.Length >= pipelineMin
	opts := &blob.WriterOptions{
		ContentType: meta.Type,
		Metadata:    map[string]string{blobMetaKey: string(mj)},
		IfNotExist:  !replace,
		// S3 (the other drivers ignore these): a body of 16 MiB or more
		// is a multipart upload holding (MaxConcurrency+1) parts of
		// BufferSize bytes; pipelined, those of pipelineBuffers, else
		// two of the least size S3 allows.
		BufferSize:     s3PlainPart,
		MaxConcurrency: 1,
	}
	if pipelined {
		opts.BufferSize, opts.MaxConcurrency = s3Part, s3Concurrency
	}
	w, err := s.b.NewWriter(wctx, key+"/"+blobContent, opts)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, key, err)
	}
	if br, ok := body.(*bytes.Reader); ok {
		_, err = br.WriteTo(w) // from memory: one write
	} else if pipelined {
		bp := copyBufs.Get().(*[]byte)
		err = copyPlain(w, body, *bp)
		copyBufs.Put(bp)
	} else {
		// Not io.Copy: the bucket's ReadFrom takes a MiB, whatever the
		// body's size.
		buf, release := plainBuffer(meta.Length)
		err = copyPlain(w, body, buf)
		release()
	}
	if err != nil {
		cancel() // abort: nothing becomes visible, the old object stays
		w.Close()
		return fmt.Errorf("%s %s: %w", verb, key, err)
	}
	if err := w.Close(); err != nil {
		if !replace && gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return fmt.Errorf("%s: %w", key, ErrExists)
		}
		return fmt.Errorf("%s %s: %w", verb, key, err)
	}
	return nil
}

func (s *Blob) meta(key string, md map[string]string) (types.Meta, error) {
	var m types.Meta
	if err := json.Unmarshal([]byte(md[blobMetaKey]), &m); err != nil {
		return types.Meta{}, fmt.Errorf("%s: %w: metadata: %w", key, ErrCorrupt, err)
	}
	return m, nil
}

func notFound(key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("reading %s: %w", key, err)
}

// Stat implements Backend.
func (s *Blob) Stat(ctx context.Context, key string) (types.Meta, error) {
	a, err := s.b.Attributes(ctx, key+"/"+blobContent)
	if err != nil {
		return types.Meta{}, notFound(key, err)
	}
	return s.meta(key, a.Metadata)
}

// Open implements Backend.
func (s *Blob) Open(ctx context.Context, key string) (Object, error) {
	// Attributes and the reader are two requests; objects are immutable
	// (Replace only rewrites an unverified node, which the Registry does
	// not read meanwhile, and its readers check what they read), so they
	// describe the same bytes.
	m, err := s.Stat(ctx, key)
	if err != nil {
		return Object{}, err
	}
	r, err := s.b.NewReader(ctx, key+"/"+blobContent, nil)
	if err != nil {
		return Object{}, notFound(key, err)
	}
	if r.Size() != m.Length {
		r.Close()
		return Object{}, fmt.Errorf("%s: %w: stored size %d does not match its meta (%d)", key, ErrCorrupt, r.Size(), m.Length)
	}
	return Object{Meta: m, Content: r}, nil
}

// List implements Backend.
func (s *Blob) List(ctx context.Context, prefix string) ([]string, error) {
	it := s.b.List(&blob.ListOptions{Prefix: prefix + "/", Delimiter: "/"})
	var out []string
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix+"/"), "/")
		if name != "" && name != blobContent {
			out = append(out, name)
		}
	}
}
