package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// The FS layout is upstream Drawbridge's (reference §4.1), so an existing
// store can be served as-is: every object is a directory holding
// "meta.json" (the Meta as JSON) and "content" (the bytes).
const (
	fsMeta    = "meta.json"
	fsContent = "content"
	fsStaging = ".staging"
	fsLock    = ".lock"
	// MaxMetaSize bounds a meta.json we read back.
	maxMetaSize = 64 << 10
)

// FS is a Backend on a local directory.
//
// Guarantees: an object is written into a private staging directory
// (.staging/<random>), its files and the directory are fsynced, and it is
// then renamed into place; the parent directory is fsynced after the rename.
// A reader therefore sees either no object or a complete one, also after a
// crash or kill -9 at any point; leftovers in .staging are removed when the
// store is opened again. rename(2) refuses to replace a non-empty directory,
// and objects are never empty, so of two concurrent Creates of one key
// exactly one wins. All access goes through an os.Root, so no key can reach
// outside the store directory, even through symbolic links.
//
// One process at a time: OpenFS takes an exclusive flock on DIR/.lock. To
// share storage between replicas use Blob on an object store.
type FS struct {
	root *os.Root
	lock *os.File
}

// OpenFS opens (creating if needed) a store in dir, which must exist.
func OpenFS(dir string) (*FS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening store directory: %w", err)
	}
	lock, err := root.OpenFile(fsLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("opening store lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		root.Close()
		return nil, fmt.Errorf("store %s is in use by another drawbridge process (flock %s: %w)", dir, fsLock, err)
	}
	s := &FS{root: root, lock: lock}
	// Residue of interrupted uploads: nothing in staging was ever visible.
	if err := root.RemoveAll(fsStaging); err != nil {
		s.Close()
		return nil, fmt.Errorf("clearing interrupted uploads: %w", err)
	}
	for _, d := range []string{fsStaging, "users"} {
		if err := root.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			s.Close()
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return s, nil
}

// Close releases the lock.
func (s *FS) Close() error {
	s.lock.Close()
	return s.root.Close()
}

func (s *FS) syncDir(name string) error {
	d, err := s.root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFile writes file name with body, of length bytes (a body from
// memory, a *bytes.Reader, in one write). A body of a MiB or more is copied
// pipelined if ctx allows it (the upload buffer budget counts the buffers,
// pipelineBuffers); any other with one buffer of at most plainCopyBuf.
func (s *FS) writeFile(ctx context.Context, name string, body io.Reader, length int64) error {
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := newWritebackWriter(f)
	if br, ok := body.(*bytes.Reader); ok {
		_, err = br.WriteTo(w)
	} else if body = (ctxReader{ctx, body}); pipelining(ctx) && length >= pipelineMin {
		err = copyPipelined(w, body)
	} else {
		buf, release := plainBuffer(length)
		err = copyPlain(w, body, buf)
		release()
	}
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyBufs are upload copy buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// pipelineBufs is how many copy buffers copyPipelined rotates.
const pipelineBufs = 3

// pipelineMin is the body size from which FS and Blob writes may be
// pipelined (that of types.PipelinedVerifyingReader).
const pipelineMin = 1 << 20

// pipelineBuffers implements pipelineCoster: copyPipelined's buffers.
func (s *FS) pipelineBuffers(length int64) int64 {
	if length < pipelineMin {
		return 0
	}
	return pipelineBufs << 20
}

// copyPipelined copies r to w in buffer-sized writes (a request body
// yields at most one TLS record, 16 KiB, per Read, and writing each one
// separately would cost a system call per record). The writes run in a
// second goroutine while the next buffer is read, so reading (TLS
// decryption and digest verification of an upload) and writing overlap on
// two cores. Only io.EOF from r ends the copy; any other error from r (a
// digest mismatch at EOF and io.ErrUnexpectedEOF included) is returned
// once the writer has stopped; w may then hold a prefix of r, and
// the caller discards it.
func copyPipelined(w io.Writer, r io.Reader) error {
	type chunk struct {
		buf *[]byte
		n   int
	}
	// Every buffer is always in exactly one place: free, full, or held by
	// one goroutine; both channels can hold all of them, so sends never
	// block.
	free := make(chan *[]byte, pipelineBufs)
	full := make(chan chunk, pipelineBufs)
	for range pipelineBufs {
		free <- copyBufs.Get().(*[]byte)
	}
	stop := make(chan struct{}) // closed when a write fails
	written := make(chan error, 1)
	go func() {
		var err error
		for c := range full {
			if err == nil {
				if _, err = w.Write((*c.buf)[:c.n]); err != nil {
					close(stop)
				}
			}
			free <- c.buf
		}
		written <- err
	}()
	var rerr error
read:
	for {
		select {
		case <-stop:
			break read
		default:
		}
		buf := <-free
		n, err := fill(r, *buf)
		if n > 0 {
			full <- chunk{buf, n}
		} else {
			free <- buf
		}
		switch err {
		case nil:
			continue
		case io.EOF:
		default:
			rerr = err
		}
		break read
	}
	close(full)
	werr := <-written
	for range pipelineBufs {
		copyBufs.Put(<-free)
	}
	if rerr != nil {
		return rerr
	}
	return werr
}

// fill reads into buf until it is full or r returns an error, which it
// passes on as is. Unlike io.ReadFull it keeps io.EOF for a short last
// read, so io.ErrUnexpectedEOF can only be r's own (net/http's request body
// says so when the client closes the connection before its Content-Length):
// a failure, not the end of the content.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Create implements Backend.
func (s *FS) Create(ctx context.Context, key string, meta types.Meta, body io.Reader) (err error) {
	var rnd [12]byte
	rand.Read(rnd[:])
	stage := path.Join(fsStaging, hex.EncodeToString(rnd[:]))
	if err := s.root.Mkdir(stage, 0o700); err != nil {
		return fmt.Errorf("staging upload: %w", err)
	}
	defer func() {
		if err != nil {
			s.root.RemoveAll(stage)
		}
	}()
	if err := s.writeFile(ctx, path.Join(stage, fsContent), body, meta.Length); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	mj, _ := meta.MarshalJSON()
	if err := s.writeFile(ctx, path.Join(stage, fsMeta), bytes.NewReader(mj), int64(len(mj))); err != nil {
		return fmt.Errorf("writing %s meta: %w", key, err)
	}
	if err := s.syncDir(stage); err != nil {
		return fmt.Errorf("syncing %s: %w", key, err)
	}
	parent := path.Dir(key)
	if _, err := s.root.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		// A new container directory ("repos", "tags", "entries"): make its
		// own name durable too, or a crash could lose the object with it.
		if err := s.root.MkdirAll(parent, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", parent, err)
		}
		if err := s.syncDir(path.Dir(parent)); err != nil {
			return fmt.Errorf("syncing %s: %w", path.Dir(parent), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.root.Rename(stage, key); err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, ErrExists)
		}
		return fmt.Errorf("publishing %s: %w", key, err)
	}
	if err := s.syncDir(parent); err != nil {
		return fmt.Errorf("syncing %s: %w", parent, err)
	}
	return nil
}

// Replace implements Backend. The new content and meta are written to a
// staging directory and fsynced as Create writes them; then each file is
// renamed over its old version (atomic per file: content first, then
// meta.json) and the object's directory is fsynced. A crash in between
// leaves new content with the old meta, which the Registry treats like any
// unverified node (it re-hashes it against the entry, and rejects it).
// Subdirectories of the object (entries/, verified/) are untouched.
func (s *FS) Replace(ctx context.Context, key string, meta types.Meta, body io.Reader) error {
	if st, err := s.root.Stat(key); err != nil || !st.IsDir() {
		if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("replacing %s: %w", key, err)
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	stage := path.Join(fsStaging, hex.EncodeToString(rnd[:]))
	if err := s.root.Mkdir(stage, 0o700); err != nil {
		return fmt.Errorf("staging upload: %w", err)
	}
	// Once renamed, the files are gone from stage; what is left is removed.
	defer s.root.RemoveAll(stage)
	if err := s.writeFile(ctx, path.Join(stage, fsContent), body, meta.Length); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	mj, _ := meta.MarshalJSON()
	if err := s.writeFile(ctx, path.Join(stage, fsMeta), bytes.NewReader(mj), int64(len(mj))); err != nil {
		return fmt.Errorf("writing %s meta: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, f := range []string{fsContent, fsMeta} {
		if err := s.root.Rename(path.Join(stage, f), path.Join(key, f)); err != nil {
			return fmt.Errorf("replacing %s/%s: %w", key, f, err)
		}
	}
	if err := s.syncDir(key); err != nil {
		return fmt.Errorf("syncing %s: %w", key, err)
	}
	return nil
}

func (s *FS) readMeta(key string) (types.Meta, error) {
	f, err := s.root.Open(path.Join(key, fsMeta))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return types.Meta{}, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return types.Meta{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return types.Meta{}, err
	}
	var m types.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return types.Meta{}, fmt.Errorf("%s: %w: %s: %w", key, ErrCorrupt, fsMeta, err)
	}
	return m, nil
}

// Stat implements Backend.
func (s *FS) Stat(ctx context.Context, key string) (types.Meta, error) {
	return s.readMeta(key)
}

// Open implements Backend.
func (s *FS) Open(ctx context.Context, key string) (Object, error) {
	m, err := s.readMeta(key)
	if err != nil {
		return Object{}, err
	}
	f, err := s.root.Open(path.Join(key, fsContent))
	if err != nil {
		return Object{}, fmt.Errorf("opening %s: %w", key, err)
	}
	return Object{Meta: m, Content: f}, nil
}

// OpenContent implements ContentOpener.
func (s *FS) OpenContent(ctx context.Context, key string) (io.ReadCloser, error) {
	f, err := s.root.Open(path.Join(key, fsContent))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("opening %s: %w", key, err)
	}
	return f, nil
}

// List implements Backend.
func (s *FS) List(ctx context.Context, prefix string) ([]string, error) {
	d, err := s.root.Open(prefix)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	out := names[:0]
	for _, n := range names {
		if n != fsMeta && n != fsContent {
			out = append(out, n)
		}
	}
	return out, nil
}

// ctxReader stops a copy when the context is cancelled (a client that went
// away mid-upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
