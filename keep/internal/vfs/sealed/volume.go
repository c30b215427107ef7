package sealed

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/keys"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/seal"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

// Options configure a volume.
type Options struct {
	// Name is the volume's name (the Enarx.toml entry's name): it is
	// mixed into the volume key, so a volume opens only under its name.
	Name string
	// MinVersion refuses a manifest older than this version (Enarx.toml
	// min_version): the only defence against the host restoring an older
	// complete copy of the volume. 0 or 1 accept any version; a new
	// volume (an empty backing directory) starts at version 1, so with
	// MinVersion above 1 an empty directory is refused too.
	MinVersion uint64
	// VolumeID, if not nil, refuses a volume of any other id (Enarx.toml
	// volume_id): MinVersion pins a number only, which another volume of
	// the same name and key (with the SNP key, any Keep of the workload
	// on the chip has it) can also show. With it an empty backing
	// directory is refused too: a new volume would get a new id.
	VolumeID *format.ID
	// ReadOnly opens the volume without ever writing to the backing
	// directory; changes fail with EROFS.
	ReadOnly bool
	// ChunkSize is a new volume's chunk size (0: 64 KiB); an existing
	// volume keeps its own.
	ChunkSize int
	// Dev is the device number Stat reports.
	Dev uint64
	// Logger, if nil, slog.Default.
	Logger *slog.Logger

	// format is a new volume's format (0: format.Current). Only the
	// tests set it, to make format 1 volumes; an existing volume keeps
	// its own.
	format format.Format
}

// ErrRollback is wrapped (with vfs.ErrIntegrity) when the manifest is
// older than Options.MinVersion.
var ErrRollback = errors.New("sealed volume is older than its configured min_version (rolled back)")

// ErrVolumeID is wrapped (with vfs.ErrIntegrity) when the volume's id is
// not Options.VolumeID.
var ErrVolumeID = errors.New("sealed volume is not the one its configured volume_id names (replaced)")

// Volume is an open sealed volume.
type Volume struct {
	name     string
	backing  vfs.Dir
	keys     *seal.Volume
	mkey     *seal.Manifest
	id       format.ID
	chunk    int
	readonly bool
	log      *slog.Logger

	// commitMu: content changes hold it shared, a commit exclusively, so
	// no slot a manifest being written references is overwritten.
	commitMu sync.RWMutex

	mu      sync.Mutex
	version uint64 // the newest version that may be on disk
	durable uint64 // the newest version known durable
	files   map[format.ID]*content
	loading map[uint64]*format.Node // ino → manifest node, during Load
	orphans []*content              // freed files: delete their objects after the next commit
	tree    *tree.Tree
	closed  bool
	// dirty: changed since the last commit (set under a content's lock,
	// so not guarded by mu).
	dirty     atomic.Bool
	committed uint64 // tree generation of the last commit

	// The files holding a cache, a scratch buffer or an open object (see
	// content.hold), at most about maxHeld. heldMu is taken under a
	// content's lock, and under it contents' locks only with TryLock.
	heldMu sync.Mutex
	held   map[*content]struct{}
	clock  atomic.Uint64 // for content.used
}

// maxHeld bounds the files of a volume that hold their object open and
// their buffers (see content.hold): a workload touching thousands of
// files must not keep a host handle (a remote backing allows a few
// thousand) and 64 KiB or more of memory for each. A variable for the
// tests.
var maxHeld = 128

// addHeld records that c holds resources and returns how many files do.
func (v *Volume) addHeld(c *content) int {
	v.heldMu.Lock()
	defer v.heldMu.Unlock()
	if v.held == nil {
		v.held = make(map[*content]struct{})
	}
	v.held[c] = struct{}{}
	return len(v.held)
}

// removeHeld records that c gave back its resources.
func (v *Volume) removeHeld(c *content) {
	v.heldMu.Lock()
	delete(v.held, c)
	v.heldMu.Unlock()
}

// evict gives back the resources of the least recently used files
// other than self (whose lock the caller holds), down to 3/4 of maxHeld:
// each one's dirty chunks are written and its object synced and closed
// first (see content.releaseLocked). Files whose lock is taken are
// skipped, so no lock order between files is needed.
func (v *Volume) evict(self *content) {
	v.heldMu.Lock()
	n := len(v.held)
	cands := make([]*content, 0, n)
	for c := range v.held {
		if c != self {
			cands = append(cands, c)
		}
	}
	v.heldMu.Unlock()
	want := n - maxHeld*3/4
	if n <= maxHeld || want <= 0 {
		return
	}
	slices.SortFunc(cands, func(a, b *content) int { return cmp.Compare(a.used.Load(), b.used.Load()) })
	var got []*content
	for _, c := range cands {
		if len(got) == want {
			break
		}
		if !c.mu.TryLock() {
			continue
		}
		if !c.held {
			c.mu.Unlock()
			continue
		}
		got = append(got, c)
	}
	// Several at a time: releasing may write and sync.
	parallel(len(got), func(_, j int) {
		c := got[j]
		if err := c.releaseLocked(); err != nil {
			v.log.Debug("sealed volume: could not release an idle file's object", "volume", v.name, "object", format.ObjectName(c.id), "err", err)
		} else {
			v.removeHeld(c)
		}
		c.mu.Unlock()
	})
}

// Open opens the sealed volume held in backing (creating a new one in an
// empty directory, unless o pins a min_version above 1 or a volume id)
// with the key src gives for o.Name, and returns it; its Root is the
// preopen's directory.
func Open(ctx context.Context, backing vfs.Dir, src keys.Source, o Options) (*Volume, error) {
	if src == nil {
		return nil, errors.New("sealed volume: no key source")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	sk, err := src.Key(ctx, o.Name)
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: getting its key from %s: %w", o.Name, src, err)
	}
	// Kept until the volume's format is known (a new volume's, or the
	// manifest's): the volume keys depend on it.
	defer clear(sk)
	v := &Volume{name: o.Name, backing: backing, readonly: o.ReadOnly, log: log, files: make(map[format.ID]*content)}
	names, err := v.listBacking(ctx)
	if err != nil {
		return nil, err
	}
	topts := tree.Options{Store: v, ReadOnly: o.ReadOnly, Dev: o.Dev}
	if !names.manifest {
		if err := v.create(names, sk, o); err != nil {
			return nil, err
		}
		t, err := tree.New(topts)
		if err != nil {
			return nil, fmt.Errorf("sealed volume %q: %w", o.Name, err)
		}
		v.tree = t
		// Version 1 is the empty tree: commit it so that the volume's id
		// and chunk size are fixed from now on.
		v.dirty.Store(true)
		if err := v.Commit(t); err != nil {
			return nil, fmt.Errorf("sealed volume %q: writing its first manifest: %w", o.Name, err)
		}
		log.Info("sealed volume created", "volume", o.Name, "volume_id", v.id.String(), "version", v.durable, "format", v.Format(), "key", src.String())
		return v, nil
	}
	body, err := v.readManifest(ctx, sk, o)
	if err != nil {
		return nil, err
	}
	snap := &tree.Snapshot{Root: body.Root, NextIno: body.NextIno, Nodes: make([]tree.Record, len(body.Nodes))}
	v.loading = make(map[uint64]*format.Node)
	for i := range body.Nodes {
		x := &body.Nodes[i]
		r := &snap.Nodes[i]
		*r = tree.Record{Ino: x.Ino, Type: fd.Filetype(x.Type), Atim: x.Atim, Mtim: x.Mtim, Ctim: x.Ctim, Target: x.Target, Size: int64(x.Size)}
		for _, e := range x.Entries {
			r.Entries = append(r.Entries, tree.Entry{Name: e.Name, Ino: e.Ino})
		}
		if x.Type == format.TypeFile {
			v.loading[x.Ino] = x
		}
	}
	t, err := tree.Load(snap, topts)
	v.loading = nil
	if err != nil {
		return nil, v.integrity(fmt.Sprintf("its manifest's namespace is inconsistent: %v", err))
	}
	v.tree = t
	v.committed = t.Gen()
	if !v.readonly {
		v.collect(names)
	}
	log.Info("sealed volume opened", "volume", o.Name, "volume_id", v.id.String(), "version", v.durable, "format", v.Format(), "files", len(v.files), "key", src.String())
	return v, nil
}

// Root returns an open handle on the volume's root directory. Closing it
// commits the volume; Close releases it.
func (v *Volume) Root() vfs.Dir { return &root{Dir: v.tree.Root(), v: v} }

// Version returns the volume's version: that of the last manifest known
// durable (the value to pin as min_version).
func (v *Volume) Version() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.durable
}

// ID returns the volume's id.
func (v *Volume) ID() format.ID { return v.id }

// Format returns the volume's format version, fixed at its creation.
func (v *Volume) Format() format.Format { return v.keys.Format() }

func (v *Volume) integrity(reason string) error {
	v.log.Error("sealed volume integrity failure", "volume", v.name, "reason", reason)
	return fmt.Errorf("sealed volume %q: %s: %w", v.name, reason, vfs.ErrIntegrity)
}

// listing is what an open needs to know of the backing directory's
// names.
type listing struct {
	manifest bool        // ManifestName is there
	temp     bool        // ManifestTemp is there
	objects  []format.ID // the content objects' file ids, sorted, distinct
	other    int         // entries that are none of these ("." and ".." aside)
}

// listPage is the entries asked of the backing directory at a time.
const listPage = 256

// maxListed bounds the entries an open reads from the backing
// directory's listing, which the host makes up as it likes (cookies that
// never end or cycle, an endless stream of names): the content objects
// of the most files a manifest an open accepts can list (New refuses more
// files, so a crash leaves no more), the manifest, its temporary, "."
// and "..". About 17.6 million with the 1 GiB manifest bound.
func maxListed() int64 { return format.MaxFiles(maxManifest) + 4 }

// listBacking reads the backing directory's names: at most maxListed
// entries, each page continuing at a cookie other than the one it
// started at (and other than 0, the beginning), and no further once ctx
// ends. Only object ids are kept (16 bytes each), whatever the names'
// lengths.
func (v *Volume) listBacking(ctx context.Context) (*listing, error) {
	l := &listing{}
	limit := maxListed()
	var cookie uint64
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("sealed volume %q: listing its host directory: stopped after %d entries: %w", v.name, n, context.Cause(ctx))
		}
		ents, err := v.backing.ReadDir(cookie, listPage)
		if err != nil {
			return nil, fmt.Errorf("sealed volume %q: listing its host directory: %w", v.name, err)
		}
		if len(ents) == 0 {
			break
		}
		n += int64(len(ents))
		if n > limit {
			return nil, v.integrity(fmt.Sprintf("its host directory is not a valid volume: its listing goes on past %d entries, more than a volume holds (at most %d objects, its manifest and a new manifest): an endless or cycling listing, or files that are not the volume's put there; refusing to open it", limit, limit-4))
		}
		for _, e := range ents {
			switch e.Name {
			case ".", "..":
			case format.ManifestName:
				l.manifest = true
			case format.ManifestTemp:
				l.temp = true
			default:
				if id, ok := format.ParseObjectName(e.Name); ok {
					l.objects = append(l.objects, id)
				} else {
					l.other++
				}
			}
		}
		next := ents[len(ents)-1].Next
		if next == cookie || next == 0 {
			return nil, v.integrity(fmt.Sprintf("its host directory is not a valid volume: its listing does not advance (the page at cookie %d continues at cookie %d, where it started or at the beginning); refusing to open it", cookie, next))
		}
		cookie = next
	}
	slices.SortFunc(l.objects, func(a, b format.ID) int { return bytes.Compare(a[:], b[:]) })
	l.objects = slices.Compact(l.objects)
	return l, nil
}

// create sets up a new volume in an empty backing directory, with keys
// from the source key sk.
func (v *Volume) create(names *listing, sk []byte, o Options) error {
	// names.temp is ignored: a first commit cut short.
	switch {
	case len(names.objects)+names.other != 0:
		return v.integrity(fmt.Sprintf("its host directory holds %d entries but no manifest (deleted?); refusing to create a new volume over them", len(names.objects)+names.other))
	case o.ReadOnly:
		return fmt.Errorf("sealed volume %q: its host directory is empty and the volume is read-only: nothing to open", o.Name)
	case o.MinVersion > 1:
		return v.integrity(fmt.Sprintf("its host directory is empty, but min_version is %d: the volume was deleted or replaced", o.MinVersion))
	case o.VolumeID != nil:
		return v.integrity(fmt.Sprintf("its host directory is empty, but volume_id is %s: the volume was deleted or replaced (a new one would get another id)", o.VolumeID))
	}
	v.chunk = o.ChunkSize
	if v.chunk == 0 {
		v.chunk = format.DefaultChunkSize
	}
	if v.chunk < 0 || !format.ValidChunkSize(uint32(v.chunk)) {
		return fmt.Errorf("sealed volume %q: chunk size %d is not a power of two in [%d, %d]", o.Name, v.chunk, format.MinChunkSize, format.MaxChunkSize)
	}
	f := o.format
	if f == 0 {
		f = format.Current
	}
	vk, err := seal.NewVolume(sk, o.Name, f)
	if err != nil {
		return fmt.Errorf("sealed volume %q: %w", o.Name, err)
	}
	rand.Read(v.id[:])
	m, err := vk.Manifest(v.id)
	if err != nil {
		return fmt.Errorf("sealed volume %q: %w", o.Name, err)
	}
	v.keys, v.mkey = vk, m
	return nil
}

// maxManifest bounds the manifest object read into memory. A variable
// for the tests.
var maxManifest int64 = 1 << 30

// readManifest reads, authenticates and checks the manifest, with keys
// from the source key sk for the format its header names. That field is
// the host's to write, but it is authenticated (additional data) and each
// format's keys are its own, so a manifest relabelled with the other
// format fails like any other tampering: a host cannot downgrade a
// volume.
func (v *Volume) readManifest(ctx context.Context, sk []byte, o Options) (*format.Body, error) {
	obj, err := readObject(ctx, v.backing, format.ManifestName, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: reading its manifest: %w", v.name, err)
	}
	h, _, err := format.ParseHeader(obj)
	if errors.Is(err, format.ErrUnknownFormat) {
		v.log.Error("sealed volume integrity failure", "volume", v.name, "reason", err.Error())
		return nil, fmt.Errorf("sealed volume %q: manifest: %w (%w)", v.name, err, vfs.ErrIntegrity)
	}
	if err != nil {
		return nil, v.integrity(fmt.Sprintf("manifest: %v", err))
	}
	vk, err := seal.NewVolume(sk, v.name, h.Format)
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: %w", v.name, err)
	}
	m, err := vk.Manifest(h.VolumeID)
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: %w", v.name, err)
	}
	_, body, err := m.Open(obj)
	if err != nil {
		return nil, v.integrity(fmt.Sprintf("manifest (format %d, volume id %s, version %d): %v: tampered, or sealed with another key or for another volume name", h.Format, h.VolumeID, h.Version, err))
	}
	if o.VolumeID != nil && h.VolumeID != *o.VolumeID {
		v.log.Error("sealed volume replaced", "volume", v.name, "volume_id", h.VolumeID.String(), "expected_volume_id", o.VolumeID.String(), "version", h.Version)
		return nil, fmt.Errorf("sealed volume %q: found volume id %s, expected %s (volume_id): %w (%w)", v.name, h.VolumeID, o.VolumeID, ErrVolumeID, vfs.ErrIntegrity)
	}
	if h.Version < o.MinVersion {
		v.log.Error("sealed volume rolled back", "volume", v.name, "version", h.Version, "min_version", o.MinVersion)
		return nil, fmt.Errorf("sealed volume %q: version %d, min_version %d: %w (%w)", v.name, h.Version, o.MinVersion, ErrRollback, vfs.ErrIntegrity)
	}
	v.id, v.keys, v.mkey, v.chunk = h.VolumeID, vk, m, int(body.ChunkSize)
	v.version, v.durable = h.Version, h.Version
	return body, nil
}

// readPiece is the bytes readObject reads between checks of its context.
const readPiece = 1 << 20

// readObject reads a whole backing object of at most max bytes, in
// pieces, stopping when ctx ends (a host may answer a byte at a time).
func readObject(ctx context.Context, d vfs.Dir, name string, max int64) ([]byte, error) {
	f, err := d.Open(name, vfs.OpenOptions{Read: true})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vf, ok := f.(vfs.File)
	if !ok {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	st, err := vf.Stat()
	if err != nil {
		return nil, err
	}
	if st.Type != fd.FiletypeRegularFile || st.Size > uint64(max) {
		return nil, fmt.Errorf("%s: type %d, %d bytes (at most %d)", name, st.Type, st.Size, max)
	}
	buf := make([]byte, st.Size)
	for n := 0; n < len(buf); {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: stopped after %d of %d bytes: %w", name, n, len(buf), context.Cause(ctx))
		}
		m, err := readFull(vf, buf[n:min(n+readPiece, len(buf))], int64(n))
		n += m
		if errors.Is(err, io.EOF) {
			return buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// collect deletes what a crash left behind: objects no manifest lists
// and a half-written manifest.
func (v *Volume) collect(names *listing) {
	remove := func(name string) {
		if err := v.backing.Unlink(name); err != nil {
			v.log.Warn("sealed volume: could not remove an unused object", "volume", v.name, "object", name, "err", err)
		}
	}
	if names.temp {
		remove(format.ManifestTemp)
	}
	for _, id := range names.objects {
		if v.files[id] == nil {
			remove(format.ObjectName(id))
		}
	}
}

// New implements tree.Store.
func (v *Volume) New(uint64) (tree.Content, error) {
	if v.readonly {
		return nil, syscall.EROFS
	}
	var id format.ID
	rand.Read(id[:])
	c, err := v.newContent(id)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	// Every file, and every freed one until the next commit, may have an
	// object: no more than a manifest can list, so that a crash leaves
	// no more objects than an open lists (maxListed).
	if max := format.MaxFiles(maxManifest); int64(len(v.files)+len(v.orphans)) >= max {
		v.mu.Unlock()
		return nil, fmt.Errorf("sealed volume %q: %d files, the most its manifest can list: %w", v.name, max, syscall.ENOSPC)
	}
	v.files[id] = c
	v.dirty.Store(true)
	v.mu.Unlock()
	return c, nil
}

// Open implements tree.Store (during Load).
func (v *Volume) Open(ino uint64, size int64) (tree.Content, error) {
	x := v.loading[ino]
	if x == nil || int64(x.Size) != size {
		return nil, fmt.Errorf("file %d has no content record", ino)
	}
	c, err := v.newContent(x.ID)
	if err != nil {
		return nil, err
	}
	c.load(x)
	v.mu.Lock()
	v.files[x.ID] = c
	v.mu.Unlock()
	return c, nil
}

// Free implements tree.Store: the file's object is deleted after the
// next commit (a durable manifest may list it until then).
func (v *Volume) Free(_ uint64, tc tree.Content) {
	c, ok := tc.(*content)
	if !ok {
		return
	}
	c.mu.Lock()
	c.freed = true
	c.cache = nil // its unwritten data is garbage now
	c.scratch, c.scratches = nil, nil
	c.mu.Unlock()
	v.mu.Lock()
	delete(v.files, c.id)
	v.orphans = append(v.orphans, c)
	v.dirty.Store(true)
	v.mu.Unlock()
}

// Charge implements tree.Store: a sealed volume is bounded by its host
// directory's free space, not by a cap.
func (v *Volume) Charge(int64) error { return nil }

func (v *Volume) markDirty() { v.dirty.Store(true) }

// Commit implements tree.Store: it makes the volume's current state
// durable as the next version. Every file's pending chunks are sealed
// and written and the manifest is written to a new object; then the
// objects and the new manifest are synced, the manifest renamed over the
// old one and the directory synced. Until the rename, the
// previous manifest and every slot it references are untouched, so a
// crash or a full disk leaves the last committed state readable.
func (v *Volume) Commit(t *tree.Tree) error {
	if v.readonly {
		return nil
	}
	// The tree's generation before v.mu: the tree calls into the
	// volume (New, Free) with its own lock held, so taking the tree's
	// lock under v.mu would deadlock against it (TestConcurrent did).
	gen := t.Gen()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return syscall.EBADF
	}
	if !v.dirty.Load() && gen == v.committed && v.durable == v.version {
		v.mu.Unlock()
		return nil
	}
	// Files freed before the snapshot are in no manifest from now on.
	orphans := len(v.orphans)
	v.mu.Unlock()
	// The namespace first, without commitMu: the tree takes its file
	// locks for it, and a writer holding one may be waiting for
	// commitMu. Sizes and chunk tables are read below, under commitMu,
	// from the contents themselves.
	snap := t.Snapshot()

	v.commitMu.Lock()
	defer v.commitMu.Unlock()
	v.mu.Lock()
	all := make(map[*content]bool, len(v.files))
	for _, c := range v.files {
		all[c] = true
	}
	v.mu.Unlock()
	for i := range snap.Nodes {
		if c, ok := snap.Nodes[i].Content.(*content); ok {
			all[c] = true
		}
	}
	if err := forAll(all, (*content).flushLocked); err != nil {
		return err
	}
	body := &format.Body{ChunkSize: uint32(v.chunk), Root: snap.Root, NextIno: snap.NextIno, Nodes: make([]format.Node, len(snap.Nodes))}
	listed := make([]*content, 0, len(all))
	for i := range snap.Nodes {
		r := &snap.Nodes[i]
		x := &body.Nodes[i]
		*x = format.Node{Ino: r.Ino, Type: uint8(r.Type), Atim: r.Atim, Mtim: r.Mtim, Ctim: r.Ctim, Target: r.Target}
		for _, e := range r.Entries {
			x.Entries = append(x.Entries, format.Entry{Name: e.Name, Ino: e.Ino})
		}
		if r.Type == fd.FiletypeRegularFile {
			c, ok := r.Content.(*content)
			if !ok {
				return fmt.Errorf("sealed volume %q: file %d has foreign content", v.name, r.Ino)
			}
			c.mu.Lock()
			c.record(x)
			c.mu.Unlock()
			listed = append(listed, c)
		}
	}
	// An open refuses a manifest over maxManifest: writing one would
	// make the whole volume unopenable. Refused like a full disk; the
	// last committed state stays.
	if n := int64(v.Format().HeaderSize() + body.Size(v.Format()) + format.TagSize); n > maxManifest {
		return fmt.Errorf("sealed volume %q: its manifest would be %d bytes, over the %d an open reads (too many files, names or chunks; the previous version stays): %w", v.name, n, maxManifest, syscall.ENOSPC)
	}

	v.mu.Lock()
	v.version++
	version := v.version
	v.mu.Unlock()
	obj := v.mkey.Seal(format.Header{VolumeID: v.id, Version: version}, body)
	if maybeRenamed, err := v.writeManifest(obj, all); err != nil {
		if maybeRenamed {
			// The new manifest may be the one on disk now, or the
			// previous one still: keep the slots of both until a
			// later commit is durable.
			for _, c := range listed {
				c.mu.Lock()
				c.maybeCommitted()
				c.mu.Unlock()
			}
		}
		return err
	}

	// Durable: the slots the previous manifest alone used are free now,
	// and the objects of files freed before the snapshot can go.
	for _, c := range listed {
		c.mu.Lock()
		c.committed()
		c.mu.Unlock()
	}
	v.mu.Lock()
	v.durable = version
	v.committed = gen
	v.dirty.Store(false)
	gone := v.orphans[:orphans:orphans]
	v.orphans = append([]*content(nil), v.orphans[orphans:]...)
	v.mu.Unlock()
	for _, c := range gone {
		c.mu.Lock()
		c.close()
		c.held = false
		c.mu.Unlock()
		v.removeHeld(c)
		if err := v.backing.Unlink(format.ObjectName(c.id)); err != nil && !errors.Is(err, syscall.ENOENT) {
			v.log.Warn("sealed volume: could not remove a deleted file's object", "volume", v.name, "object", format.ObjectName(c.id), "err", err)
		}
	}
	v.log.Debug("sealed volume committed", "volume", v.name, "version", version, "format", v.Format(), "files", len(listed), "manifest_bytes", len(obj))
	return nil
}

// writeManifest writes obj as ManifestTemp; syncs it and the objects of
// the files in all at once (the objects must be durable before the
// rename, not before the manifest is written); renames it over
// ManifestName and syncs the directory. On an error, maybeRenamed reports
// whether the rename was attempted: obj may then be the manifest on disk
// (a failed directory sync, or a rename that failed in its reply).
func (v *Volume) writeManifest(obj []byte, all map[*content]bool) (maybeRenamed bool, err error) {
	f, err := v.backing.Open(format.ManifestTemp, vfs.OpenOptions{Create: true, Trunc: true, Write: true, Read: true})
	if err != nil {
		return false, fmt.Errorf("sealed volume %q: creating its new manifest: %w", v.name, err)
	}
	vf, ok := f.(vfs.File)
	if !ok {
		f.Close()
		return false, fmt.Errorf("sealed volume %q: %s is not a regular file", v.name, format.ManifestTemp)
	}
	_, err = vf.WriteAt(obj, 0)
	if err == nil {
		done := make(chan error, 1)
		go func() { done <- vf.Datasync() }()
		err = forAll(all, (*content).datasyncLocked)
		if merr := <-done; err == nil {
			err = merr
		}
	}
	if cerr := vf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		v.backing.Unlink(format.ManifestTemp)
		return false, fmt.Errorf("sealed volume %q: writing its manifest (the previous version stays): %w", v.name, err)
	}
	if err := v.backing.Rename(format.ManifestTemp, v.backing, format.ManifestName); err != nil {
		v.backing.Unlink(format.ManifestTemp)
		return true, fmt.Errorf("sealed volume %q: renaming its new manifest into place: %w", v.name, err)
	}
	if err := v.backing.Sync(); err != nil {
		// The rename may or may not be durable: both manifests are whole,
		// the caller keeps the slots of both (content.maybeCommitted),
		// and the next commit uses a newer version whichever survives.
		return true, fmt.Errorf("sealed volume %q: syncing its host directory after a commit: %w", v.name, err)
	}
	return false, nil
}

// Close commits the volume and releases its host descriptors (the
// objects and the backing directory). Call it once the Keep is done with
// the volume (at exit); handles still open fail afterwards.
func (v *Volume) Close() error {
	err := v.Commit(v.tree)
	v.commitMu.Lock()
	defer v.commitMu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	if !v.readonly {
		v.log.Info("sealed volume closed", "volume", v.name, "volume_id", v.id.String(), "version", v.durable, "format", v.Format(), "committed", err == nil)
	}
	for _, c := range append(v.orphans, slices.Collect(maps.Values(v.files))...) {
		c.mu.Lock()
		if cerr := c.close(); err == nil {
			err = cerr
		}
		c.held = false
		c.mu.Unlock()
	}
	v.heldMu.Lock()
	v.held = nil
	v.heldMu.Unlock()
	if cerr := v.backing.Close(); err == nil {
		err = cerr
	}
	return err
}

// root is the volume's root directory handle (the preopen): closing it
// commits the volume, which stays open for the workload's other handles
// until Volume.Close.
type root struct {
	*tree.Dir
	v *Volume
}

// TreeDir lets the tree recognise the root as its own in Rename and Link.
func (r *root) TreeDir() *tree.Dir { return r.Dir }

// Close implements fd.File: it closes the handle and commits the volume.
func (r *root) Close() error {
	if err := r.Dir.Close(); err != nil {
		return err
	}
	return r.v.Commit(r.v.tree)
}

// syncWorkers bounds the files written or synced at once by a commit:
// concurrent fsyncs of many small objects share the host file system's
// journal commits.
const syncWorkers = 8

// forAll runs fn on each content under its lock, several at a time, and
// returns the first error.
func forAll(all map[*content]bool, fn func(*content) error) error {
	work := make(chan *content)
	errs := make(chan error, syncWorkers)
	var wg sync.WaitGroup
	for range min(syncWorkers, len(all)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for c := range work {
				if first != nil {
					continue
				}
				c.mu.Lock()
				first = fn(c)
				c.mu.Unlock()
			}
			errs <- first
		}()
	}
	for c := range all {
		work <- c
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
