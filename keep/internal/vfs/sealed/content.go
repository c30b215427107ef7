package sealed

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/seal"
)

// chunkRef is where a chunk's ciphertext is and what authenticates it.
type chunkRef struct {
	slot  uint32
	n     uint32                    // plaintext bytes sealed
	nonce [format.MaxNonceSize]byte // the format's NonceSize bytes, then zeros
	tag   [format.TagSize]byte
	// committed: the last durable manifest references this slot, so it
	// must not be overwritten until a newer manifest is durable.
	committed bool
}

// noChunk marks a cache entry that holds no chunk (chunk indexes are
// below 2^31, see format.MaxFileSize).
const noChunk = ^uint32(0)

// cbuf is a cached plaintext chunk.
type cbuf struct {
	idx   uint32
	data  []byte // chunk size; zeros past n
	n     int    // plaintext bytes of the chunk that are data
	dirty bool
	used  uint64
}

// cacheChunks bounds the plaintext chunks cached per file (512 KiB at
// the default chunk size): enough that small sequential reads and writes
// decrypt and seal each chunk once.
const cacheChunks = 8

// content is a regular file's bytes: chunks sealed into the file's
// backing object at copy-on-write slots.
type content struct {
	v    *Volume
	id   format.ID
	aead *seal.File
	size atomic.Int64

	mu sync.Mutex
	// chunks holds the refs of the chunks present, by index; a chunk not
	// in it is a hole (zeros). Sparse, so that the memory and the commit
	// time of a file are those of the chunks written, not of its size (one
	// byte written 8 TiB in is one entry).
	chunks      map[uint32]chunkRef
	nextSlot    uint32
	free        []uint32 // slots no manifest references
	retired     []uint32 // slots the durable manifest references but the file no longer uses
	uncommitted []uint32 // chunk indexes whose ref is not committed
	// cache, scratch, scratches and obj are taken when first needed and
	// given back (see Volume.evict) when the volume holds them for more
	// than maxHeld files: a file not in use costs neither memory nor a
	// host handle.
	cache     []*cbuf
	tick      uint64
	scratch   []byte   // chunk size + tag
	scratches [][]byte // the other workers' (see parallel)
	obj       vfs.File
	objDirty  bool // written since its last Sync
	freed     bool
	held      bool          // in v.held: holds some of cache, scratch and obj
	used      atomic.Uint64 // v.clock at its last use
}

func (v *Volume) newContent(id format.ID) (*content, error) {
	a, err := v.keys.File(v.id, id)
	if err != nil {
		return nil, err
	}
	return &content{v: v, id: id, aead: a}, nil
}

// touch marks c as just used, for the choice of the files to evict.
func (c *content) touch() { c.used.Store(c.v.clock.Add(1)) }

// hold is called (c.mu held) when c takes a cache buffer, a scratch
// buffer or its object: past maxHeld such files, the volume gives back
// those of the least recently used others.
func (c *content) hold() {
	if c.held {
		return
	}
	c.held = true
	c.touch()
	if c.v.addHeld(c) > maxHeld {
		c.v.evict(c)
	}
}

// releaseLocked writes c's dirty chunks, makes its object durable and
// gives back its cache, scratch buffers and object (c.mu held), so that
// nothing of c is lost by the release. On an error c keeps them all.
func (c *content) releaseLocked() error {
	if err := c.flushLocked(); err != nil {
		return err
	}
	if err := c.datasyncLocked(); err != nil {
		return err
	}
	if err := c.close(); err != nil {
		// Durable already: only the handle is in question.
		c.v.log.Debug("sealed volume: closing an object", "volume", c.v.name, "object", format.ObjectName(c.id), "err", err)
	}
	c.cache, c.scratch, c.scratches = nil, nil, nil
	c.held = false
	return nil
}

// load sets the content of a file listed in the manifest.
func (c *content) load(n *format.Node) {
	c.size.Store(int64(n.Size))
	if len(n.Chunks) == 0 {
		return
	}
	c.chunks = make(map[uint32]chunkRef, len(n.Chunks))
	used := make([]uint32, 0, len(n.Chunks))
	for _, x := range n.Chunks {
		c.chunks[x.Index] = chunkRef{slot: x.Slot, n: x.Len, nonce: x.Nonce, tag: x.Tag, committed: true}
		used = append(used, x.Slot)
	}
	sort.Slice(used, func(i, j int) bool { return used[i] < used[j] })
	c.nextSlot = used[len(used)-1] + 1
	// The gaps are free; a manifest this Keep wrote has few (at most the
	// slots freed since the last commit). Bound the list anyway: a slot
	// left out is only space not reused.
	next := uint32(0)
	for _, s := range used {
		for ; next < s && len(c.free) < 1<<16; next++ {
			c.free = append(c.free, next)
		}
		next = s + 1
	}
}

func (c *content) chunkSize() int { return c.v.chunk }

// Size implements tree.Content.
func (c *content) Size() int64 { return c.size.Load() }

func (c *content) integrity(idx uint32, reason string) error {
	err := fmt.Errorf("sealed volume %q: object %s chunk %d: %s: %w", c.v.name, format.ObjectName(c.id), idx, reason, vfs.ErrIntegrity)
	c.v.log.Error("sealed volume integrity failure: refusing the data", "volume", c.v.name, "object", format.ObjectName(c.id), "chunk", idx, "reason", reason)
	return err
}

// object opens the backing object (creating it when create).
func (c *content) object(create bool) (vfs.File, error) {
	if c.obj != nil {
		return c.obj, nil
	}
	o := vfs.OpenOptions{Read: true, Write: !c.v.readonly, Create: create && !c.v.readonly}
	f, err := c.v.backing.Open(format.ObjectName(c.id), o)
	if err != nil {
		return nil, err
	}
	vf, ok := f.(vfs.File)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("sealed volume %q: object %s is not a regular file", c.v.name, format.ObjectName(c.id))
	}
	c.obj = vf
	c.hold()
	return vf, nil
}

// readChunk authenticates and decrypts chunk idx (present) into dst,
// which has room for the chunk.
func (c *content) readChunk(dst []byte, idx uint32) error {
	obj, err := c.readObject(idx)
	if err != nil {
		return err
	}
	return c.openChunk(obj, c.scratchFor(0), dst, idx, c.chunks[idx])
}

// readObject opens the object for reading chunk idx.
func (c *content) readObject(idx uint32) (vfs.File, error) {
	obj, err := c.object(false)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, c.integrity(idx, "the object is missing")
		}
		return nil, fmt.Errorf("sealed volume %q: opening object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	return obj, nil
}

// openChunk reads chunk idx (ref r) into scratch, authenticates and
// decrypts it there and copies the plaintext to dst. It touches nothing shared but obj (pread), so
// runs of chunks are opened in parallel.
func (c *content) openChunk(obj vfs.File, scratch, dst []byte, idx uint32, r chunkRef) error {
	ct := scratch[:r.n]
	got, err := readFull(obj, ct, int64(r.slot)*int64(c.chunkSize()))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sealed volume %q: reading object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	if got < len(ct) {
		return c.integrity(idx, "the object is truncated")
	}
	// Decrypted in place in the Keep's own buffer and copied out only once
	// authenticated: dst may be the guest's memory, where another thread
	// of the workload must never see unauthenticated plaintext (AES-GCM
	// decrypts before it has compared the tag).
	plain, err := c.aead.OpenChunk(ct[:0], ct, idx, r.nonce, r.tag)
	if err != nil {
		return c.integrity(idx, "the chunk fails authentication (tampered, swapped or older)")
	}
	copy(dst, plain)
	return nil
}

func readFull(f vfs.File, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.ReadAt(p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

// cached returns chunk idx's cache entry, loading it (and evicting the
// least recently used one) if needed.
func (c *content) cached(idx uint32, load bool) (*cbuf, error) {
	c.tick++
	for _, b := range c.cache {
		if b.idx == idx {
			b.used = c.tick
			return b, nil
		}
	}
	var b *cbuf
	if len(c.cache) < cacheChunks {
		b = &cbuf{data: make([]byte, c.chunkSize())}
		c.cache = append(c.cache, b)
		c.hold()
	} else {
		b = c.cache[0]
		for _, x := range c.cache[1:] {
			if x.used < b.used {
				b = x
			}
		}
		if b.dirty {
			if err := c.flush(b); err != nil {
				return nil, err
			}
		}
	}
	b.idx, b.used, b.dirty, b.n = idx, c.tick, false, 0
	clear(b.data)
	if r, ok := c.chunks[idx]; load && ok {
		if err := c.readChunk(b.data, idx); err != nil {
			b.idx = noChunk
			b.used = 0
			return nil, err
		}
		b.n = int(r.n)
	}
	return b, nil
}

// drop forgets cache entries for chunks idx and above.
func (c *content) dropCache(from uint32) {
	for _, b := range c.cache {
		if b.idx >= from && b.idx != noChunk {
			b.idx, b.dirty, b.used = noChunk, false, 0
		}
	}
}

// alloc returns a free slot for a new version of a chunk. A chunk is
// never rewritten in place: until the new version is written whole, the
// old one (committed or not) stays readable, so a failed write (ENOSPC)
// leaves the file as it was.
func (c *content) alloc() (uint32, error) {
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s, nil
	}
	if c.nextSlot == format.NoSlot {
		return 0, syscall.EFBIG
	}
	c.nextSlot++
	return c.nextSlot - 1, nil
}

// setRef records chunk idx's new ref (after its ciphertext is written).
func (c *content) setRef(idx uint32, r chunkRef) {
	if c.chunks == nil {
		c.chunks = make(map[uint32]chunkRef)
	}
	old, had := c.chunks[idx]
	if had {
		c.release(old)
	}
	c.chunks[idx] = r
	if had && !old.committed {
		return // already listed
	}
	c.uncommitted = append(c.uncommitted, idx)
}

// release gives back the slot of a ref no longer used.
func (c *content) release(r chunkRef) {
	if r.committed {
		c.retired = append(c.retired, r.slot)
	} else {
		c.free = append(c.free, r.slot)
	}
}

// seal writes plaintext p as chunk idx.
func (c *content) seal(idx uint32, p []byte) error {
	if len(p) == 0 {
		c.punch(idx)
		return nil
	}
	slot, err := c.alloc()
	if err != nil {
		return err
	}
	obj, err := c.object(true)
	if err != nil {
		c.unalloc(slot)
		return fmt.Errorf("sealed volume %q: creating object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	ct, nonce, tag := c.aead.SealChunk(c.scratchFor(0), p, idx)
	if _, err := obj.WriteAt(ct, int64(slot)*int64(c.chunkSize())); err != nil {
		c.unalloc(slot)
		return fmt.Errorf("sealed volume %q: writing object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	c.objDirty = true
	c.setRef(idx, chunkRef{slot: slot, n: uint32(len(p)), nonce: nonce, tag: tag})
	return nil
}

// unalloc returns a slot alloc gave whose write failed.
func (c *content) unalloc(slot uint32) { c.free = append(c.free, slot) }

// punch makes chunk idx a hole.
func (c *content) punch(idx uint32) {
	r, ok := c.chunks[idx]
	if !ok {
		return
	}
	c.release(r)
	delete(c.chunks, idx)
}

func (c *content) flush(b *cbuf) error {
	// Sealed zero-padded to a multiple of format.PadSize (the cache keeps
	// the bytes past b.n zero): the host does not learn exact sizes.
	n := b.n
	if n > 0 {
		n = min((n+format.PadSize-1)/format.PadSize*format.PadSize, len(b.data))
	}
	if err := c.seal(b.idx, b.data[:n]); err != nil {
		return err
	}
	b.dirty = false
	return nil
}

// ReadAt implements tree.Content.
func (c *content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	c.v.commitMu.RLock()
	defer c.v.commitMu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch()
	size := c.size.Load()
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	cs := int64(c.chunkSize())
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		idx := uint32(pos / cs)
		o := int(pos % cs)
		m := min(len(p)-n, int(cs)-o)
		dst := p[n : n+m]
		if k := c.run(idx, o, len(p)-n); k > 1 {
			// Whole chunks: opened in parallel straight into p.
			done, err := c.openRun(idx, p[n:n+k*int(cs)])
			n += done * int(cs)
			if err != nil {
				return n, err
			}
			continue
		}
		r, present := c.chunks[idx]
		if b := c.lookup(idx); b != nil {
			copy(dst, b.data[o:])
		} else if !present {
			clear(dst)
		} else if o == 0 && m >= int(r.n) {
			// The whole chunk's data: decrypt straight into p.
			if err := c.readChunk(dst, idx); err != nil {
				return n, err
			}
			clear(dst[r.n:])
		} else {
			b, err := c.cached(idx, true)
			if err != nil {
				return n, err
			}
			copy(dst, b.data[o:])
		}
		n += m
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// maxRun bounds the chunks sealed or opened by one parallel run.
const maxRun = 64

// run returns how many whole chunks from idx (at offset o in it) the
// remaining rest bytes of a request cover, none of them cached: the
// run sealRun and openRun can do without the cache.
func (c *content) run(idx uint32, o, rest int) int {
	if o != 0 || runtime.GOMAXPROCS(0) < 2 {
		return 0
	}
	k := min(rest/c.chunkSize(), maxRun)
	for j := range k {
		if c.lookup0(idx+uint32(j)) != nil {
			return j
		}
	}
	return k
}

// lookup0 is lookup without touching the LRU order.
func (c *content) lookup0(idx uint32) *cbuf {
	for _, b := range c.cache {
		if b.idx == idx {
			return b
		}
	}
	return nil
}

// parallel runs fn(w, j) for j in [0, k) on up to GOMAXPROCS workers
// (w is the worker's number, below maxWorkers).
func parallel(k int, fn func(w, j int)) {
	nw := min(k, runtime.GOMAXPROCS(0), maxWorkers)
	if nw <= 1 {
		for j := range k {
			fn(0, j)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range nw {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= k {
					return
				}
				fn(w, j)
			}
		}()
	}
	wg.Wait()
}

// maxWorkers bounds the goroutines of one parallel run.
const maxWorkers = 8

// scratchFor returns worker w's ciphertext buffer (c.mu held; the
// parallel workers' are allocated before they start, see scratches).
func (c *content) scratchFor(w int) []byte {
	if w == 0 {
		if c.scratch == nil {
			c.scratch = make([]byte, c.chunkSize()+format.TagSize)
			c.hold()
		}
		return c.scratch
	}
	if c.scratches == nil {
		c.scratches = make([][]byte, maxWorkers)
	}
	if c.scratches[w] == nil {
		c.scratches[w] = make([]byte, c.chunkSize()+format.TagSize)
	}
	return c.scratches[w]
}

// allocScratches allocates the buffers of the workers of a parallel run
// of k chunks (c.mu held).
func (c *content) allocScratches(k int) {
	for w := range min(k, maxWorkers) {
		c.scratchFor(w)
	}
}

// sealRun writes whole chunks idx, idx+1, ... from p (a multiple of the
// chunk size), sealing and writing them in parallel, and returns how
// many were written (a prefix of the run) before an error.
func (c *content) sealRun(idx uint32, p []byte) (int, error) {
	cs := c.chunkSize()
	k := len(p) / cs
	obj, err := c.object(true)
	if err != nil {
		return 0, fmt.Errorf("sealed volume %q: creating object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	slots := make([]uint32, k)
	for j := range k {
		if slots[j], err = c.alloc(); err != nil {
			for _, s := range slots[:j] {
				c.unalloc(s)
			}
			return 0, err
		}
	}
	c.allocScratches(k) // here, not by the workers
	refs := make([]chunkRef, k)
	errs := make([]error, k)
	parallel(k, func(w, j int) {
		ct, nonce, tag := c.aead.SealChunk(c.scratchFor(w), p[j*cs:(j+1)*cs], idx+uint32(j))
		_, errs[j] = obj.WriteAt(ct, int64(slots[j])*int64(cs))
		refs[j] = chunkRef{slot: slots[j], n: uint32(cs), nonce: nonce, tag: tag}
	})
	done := 0
	for ; done < k && errs[done] == nil; done++ {
		c.setRef(idx+uint32(done), refs[done])
	}
	for _, s := range slots[done:] {
		c.unalloc(s)
	}
	if done > 0 {
		c.objDirty = true
	}
	if done < k {
		return done, fmt.Errorf("sealed volume %q: writing object %s: %w", c.v.name, format.ObjectName(c.id), errs[done])
	}
	return k, nil
}

// openRun reads whole chunks idx, idx+1, ... into p (a multiple of the
// chunk size, inside the file), opening them in parallel, and returns
// how many were read (a prefix of the run) before an error.
func (c *content) openRun(idx uint32, p []byte) (int, error) {
	cs := c.chunkSize()
	k := len(p) / cs
	var obj vfs.File
	refs := make([]chunkRef, k)
	present := make([]bool, k)
	for j := range k {
		refs[j], present[j] = c.chunks[idx+uint32(j)]
		if present[j] && obj == nil {
			var err error
			if obj, err = c.readObject(idx + uint32(j)); err != nil {
				return 0, err
			}
		}
	}
	c.allocScratches(k)
	errs := make([]error, k)
	parallel(k, func(w, j int) {
		dst := p[j*cs : (j+1)*cs]
		if !present[j] {
			clear(dst)
			return
		}
		r := refs[j]
		if errs[j] = c.openChunk(obj, c.scratchFor(w), dst, idx+uint32(j), r); errs[j] == nil {
			clear(dst[r.n:])
		}
	})
	for j, err := range errs {
		if err != nil {
			return j, err
		}
	}
	return k, nil
}

func (c *content) lookup(idx uint32) *cbuf {
	for _, b := range c.cache {
		if b.idx == idx {
			c.tick++
			b.used = c.tick
			return b
		}
	}
	return nil
}

// WriteAt implements tree.Content.
func (c *content) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if c.v.readonly {
		return 0, syscall.EROFS
	}
	if uint64(off)+uint64(len(p)) > format.MaxFileSize {
		return 0, syscall.EFBIG
	}
	c.v.commitMu.RLock()
	defer c.v.commitMu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch()
	c.v.markDirty()
	cs := int64(c.chunkSize())
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		idx := uint32(pos / cs)
		o := int(pos % cs)
		m := min(len(p)-n, int(cs)-o)
		src := p[n : n+m]
		if k := c.run(idx, o, len(p)-n); k > 1 {
			// Whole chunks: sealed in parallel straight from p.
			done, err := c.sealRun(idx, p[n:n+k*int(cs)])
			n += done * int(cs)
			if err != nil {
				return c.wrote(off, n), err
			}
			continue
		}
		if m == int(cs) && c.lookup(idx) == nil {
			// A whole chunk: seal straight from p.
			if err := c.seal(idx, src); err != nil {
				return c.wrote(off, n), err
			}
		} else {
			b, err := c.cached(idx, true)
			if err != nil {
				return c.wrote(off, n), err
			}
			copy(b.data[o:], src)
			b.n = max(b.n, o+m)
			b.dirty = true
		}
		n += m
	}
	return c.wrote(off, n), nil
}

// wrote grows the size after n bytes were written at off.
func (c *content) wrote(off int64, n int) int {
	if end := off + int64(n); n > 0 && end > c.size.Load() {
		c.size.Store(end)
	}
	return n
}

// Truncate implements tree.Content.
func (c *content) Truncate(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	if uint64(size) > format.MaxFileSize {
		return syscall.EFBIG
	}
	if c.v.readonly {
		return syscall.EROFS
	}
	c.v.commitMu.RLock()
	defer c.v.commitMu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch()
	c.v.markDirty()
	if size >= c.size.Load() {
		c.size.Store(size) // the new bytes are holes
		return nil
	}
	cs := int64(c.chunkSize())
	keep := uint32((size + cs - 1) / cs) // chunks [0, keep) stay
	if tail := int(size % cs); tail != 0 {
		// The chunk holding the new end keeps only its first tail bytes.
		idx := keep - 1
		b := c.lookup(idx)
		if r, ok := c.chunks[idx]; b == nil && ok && int(r.n) > tail {
			var err error
			if b, err = c.cached(idx, true); err != nil {
				return err
			}
		}
		if b != nil && b.n > tail {
			clear(b.data[tail:])
			b.n = tail
			b.dirty = true
		}
	}
	c.dropCache(keep)
	// In index order: the free list's order decides which slots are
	// reused, and stays what it was with a dense table.
	var cut []uint32
	for i := range c.chunks {
		if i >= keep {
			cut = append(cut, i)
		}
	}
	slices.Sort(cut)
	for _, i := range cut {
		c.punch(i)
	}
	c.size.Store(size)
	return nil
}

// Allocate implements tree.Allocator: the size grows to off+n; the host
// object is not preallocated (its free space is the host's to give).
func (c *content) Allocate(off, n int64) error {
	if off < 0 || n <= 0 {
		return syscall.EINVAL
	}
	if uint64(off)+uint64(n) > format.MaxFileSize { // no overflow: both below 2^63
		return syscall.EFBIG
	}
	if end := off + n; end > c.size.Load() {
		return c.Truncate(end)
	}
	return nil
}

// Sync implements tree.Content: the dirty chunks are sealed and written;
// the tree then calls Store.Commit, which syncs them together with the
// new manifest and makes them part of the volume.
func (c *content) Sync() error {
	if c.v.readonly {
		return nil
	}
	c.v.commitMu.RLock()
	defer c.v.commitMu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

// flushLocked seals and writes the dirty cached chunks (c.mu held).
func (c *content) flushLocked() error {
	if c.freed {
		return nil // its cache is dropped
	}
	for _, b := range c.cache {
		if b.dirty {
			if err := c.flush(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// datasyncLocked makes what was written to the object durable (c.mu
// held). A freed file is synced too: a manifest whose snapshot was taken
// just before it was freed may still list it.
func (c *content) datasyncLocked() error {
	if !c.objDirty || c.obj == nil {
		return nil
	}
	if err := c.obj.Datasync(); err != nil {
		return fmt.Errorf("sealed volume %q: syncing object %s: %w", c.v.name, format.ObjectName(c.id), err)
	}
	c.objDirty = false
	return nil
}

// record returns the manifest's view of the content (c.mu held, after
// flushLocked).
func (c *content) record(n *format.Node) {
	n.ID = c.id
	n.Size = uint64(c.size.Load())
	n.Chunks = n.Chunks[:0]
	for i, r := range c.chunks {
		n.Chunks = append(n.Chunks, format.Chunk{Index: i, Slot: r.slot, Len: r.n, Nonce: r.nonce, Tag: r.tag})
	}
	// By increasing index, as the format requires.
	slices.SortFunc(n.Chunks, func(a, b format.Chunk) int { return cmp.Compare(a.Index, b.Index) })
}

// committed is called once a manifest listing c as recorded is durable
// (c.mu held): its slots become the ones to preserve, and the ones the
// previous manifest used and c no longer does are free.
func (c *content) committed() {
	c.maybeCommitted()
	if len(c.retired) == 0 {
		return
	}
	c.free = append(c.free, c.retired...)
	c.retired = c.retired[:0]
	// Highest first: alloc pops the lowest, so the live slots gather at
	// the start and shrink can cut the end.
	sort.Slice(c.free, func(i, j int) bool { return c.free[i] > c.free[j] })
	c.shrink()
}

// maybeCommitted is called when a manifest listing c as recorded may or
// may not have become durable (its commit failed after the rename; c.mu
// held): its slots are preserved like committed ones, and the slots the
// previous manifest used stay retired, since that manifest may be the
// durable one still. The next commit that succeeds frees both.
func (c *content) maybeCommitted() {
	for _, i := range c.uncommitted {
		if r, ok := c.chunks[i]; ok && !r.committed {
			r.committed = true
			c.chunks[i] = r
		}
	}
	c.uncommitted = c.uncommitted[:0]
}

// shrink cuts free slots off the end of the object, so that it does not
// keep the size of the file's largest past version (c.mu held, right
// after a commit: no manifest references a free slot).
func (c *content) shrink() {
	end := uint32(0)
	for _, r := range c.chunks {
		if r.slot >= end {
			end = r.slot + 1
		}
	}
	if end >= c.nextSlot {
		return
	}
	obj, err := c.object(false) // released (see Volume.evict): reopened
	if err != nil {
		c.v.log.Debug("sealed volume: could not open an object to shrink it", "volume", c.v.name, "object", format.ObjectName(c.id), "err", err)
		return
	}
	if err := obj.Truncate(int64(end) * int64(c.chunkSize())); err != nil {
		c.v.log.Debug("sealed volume: could not shrink an object", "volume", c.v.name, "object", format.ObjectName(c.id), "err", err)
		return
	}
	c.nextSlot = end
	free := c.free[:0]
	for _, s := range c.free {
		if s < end {
			free = append(free, s)
		}
	}
	c.free = free
}

// close releases the object.
func (c *content) close() error {
	if c.obj == nil {
		return nil
	}
	err := c.obj.Close()
	c.obj = nil
	return err
}
