// Package format is the byte layout of a sealed volume's manifest: the
// plaintext header that names the volume, its format and its version, and
// the body (sealed by package seal) that holds the directory tree with
// every file's chunk table. It only encodes and decodes: it knows no keys
// and checks nothing but shape. Package seal authenticates the bytes;
// package sealed decides what to accept (the volume policy).
//
// Trust: ParseHeader reads bytes straight from the untrusted host and
// ParseBody reads bytes that package seal has authenticated; both bound
// every count and length by the input's size, so no input panics, hangs
// or allocates more than a small multiple of its own length.
//
// Two format versions exist; a volume keeps the one it was created with
// (like its id). They differ only in the AEAD (package seal) and so in
// the nonce's size, which sets the header's and each chunk entry's:
//
//	V1: AES-256-GCM,        12-byte nonces (read, and written for V1 volumes)
//	V2: XChaCha20-Poly1305, 24-byte nonces (written for every new volume)
//
// Manifest object (all integers big-endian; N is the format's NonceSize):
//
//	header (HeaderSize bytes, the AEAD's additional data):
//	  magic      [8]  "enxseal\x00"
//	  format     u32  1 or 2: fixes N and the AEAD, so it precedes the nonce
//	  volume id  [16] random, fixed at creation
//	  version    u64  the volume version, +1 at every commit
//	  nonce      [N]  the body's nonce
//	sealed body: AEAD(body) ‖ 16-byte tag
//
// Body:
//
//	chunk size u32  a power of two in [MinChunkSize, MaxChunkSize]
//	root       u64  the root directory's inode number
//	next ino   u64  the next inode number to assign
//	node count u32, then per node (the namespace, package tree's Snapshot):
//	  ino u64, type u8 (3 directory, 4 regular file, 7 symlink),
//	  atim, mtim, ctim i64 (ns since the Unix epoch), then by type:
//	  directory: entry count u32, per entry: name length u16, name, ino u64
//	  symlink:   target length u16, target
//	  file:      file id [16] (random, fixed at creation; names its object),
//	             size u64 (plaintext), chunk count u32, then per present
//	             chunk, index increasing (a chunk not listed is a hole and
//	             reads as zeros):
//	               index u32, slot u32, length u32 (bytes sealed, 1 to
//	               chunk size: the chunk's data zero-padded to a multiple
//	               of PadSize, so that objects show sizes only to PadSize;
//	               the rest of the chunk, and whatever lies past the
//	               file's size, reads as zeros), nonce [N], tag [16]
//
// A content object (named ObjectName(file id)) holds slot s at byte
// offset s × chunk size: the AEAD ciphertext of one chunk without its
// tag (the tag lives in the manifest, so the manifest pins every chunk).
package format

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Magic starts every manifest.
const Magic = "enxseal\x00"

// Format is a format version: the header's format field.
type Format uint32

// The format versions.
const (
	// V1: AES-256-GCM with 96-bit nonces. Still read and written, for
	// volumes created as V1.
	V1 Format = 1
	// V2: XChaCha20-Poly1305 with 192-bit nonces.
	V2 Format = 2
	// Current is the format of every new volume.
	Current = V2
)

// Valid reports whether f is a format this package reads.
func (f Format) Valid() bool { return f == V1 || f == V2 }

// NonceSize is the length of f's nonces (0 for an invalid format).
func (f Format) NonceSize() int {
	switch f {
	case V1:
		return 12
	case V2:
		return 24
	}
	return 0
}

// HeaderSize is the length of a manifest header of format f.
func (f Format) HeaderSize() int { return headerFixed + f.NonceSize() }

// chunkEntry is the length of one chunk entry of format f.
func (f Format) chunkEntry() int { return 4 + 4 + 4 + f.NonceSize() + TagSize }

// Sizes of the fixed parts.
const (
	IDSize = 16
	// MaxNonceSize is the longest nonce of any format: Header.Nonce and
	// Chunk.Nonce hold a nonce in their first NonceSize bytes.
	MaxNonceSize = 24
	TagSize      = 16
	headerFixed  = len(Magic) + 4 + IDSize + 8 // a header without its nonce
	fileFixed    = IDSize + 8 + 4              // a file node's payload before its chunks
)

// Chunk size bounds.
const (
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 1 << 20
	DefaultChunkSize = 64 << 10
)

// PadSize is the granularity a partial chunk is padded to when sealed.
const PadSize = 4096

// NoSlot is never a valid slot.
const NoSlot = math.MaxUint32

// Object names in the backing directory.
const (
	ManifestName = "manifest"
	// ManifestTemp is where a new manifest is written before it is
	// renamed over ManifestName.
	ManifestTemp  = "manifest.new"
	objectPrefix  = "c-"
	objectNameLen = len(objectPrefix) + 2*IDSize
)

// ID is a volume or file identifier.
type ID [IDSize]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads an id as String writes it: exactly 2*IDSize lowercase
// hexadecimal digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("%d characters, want %d hexadecimal digits", len(s), 2*IDSize)
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, fmt.Errorf("%q is not a lowercase hexadecimal digit", c)
		}
	}
	hex.Decode(id[:], []byte(s))
	return id, nil
}

// ObjectName is the backing object that holds file id's chunks.
func ObjectName(id ID) string { return objectPrefix + id.String() }

// ParseObjectName returns the file id an object name stands for, or false
// if name is not a content object's name.
func ParseObjectName(name string) (ID, bool) {
	var id ID
	if len(name) != objectNameLen || !strings.HasPrefix(name, objectPrefix) {
		return id, false
	}
	s := name[len(objectPrefix):]
	if strings.ToLower(s) != s {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, false
	}
	return id, true
}

// Header is a manifest's plaintext header.
type Header struct {
	Format   Format
	VolumeID ID
	Version  uint64
	// Nonce: the first Format.NonceSize() bytes; the rest are zero.
	Nonce [MaxNonceSize]byte
}

// Append appends the header's encoding (h.Format.HeaderSize() bytes) to
// b. h.Format must be valid.
func (h *Header) Append(b []byte) []byte {
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Format))
	b = append(b, h.VolumeID[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Version)
	return append(b, h.Nonce[:h.Format.NonceSize()]...)
}

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("malformed sealed-volume manifest")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// ErrUnknownFormat is wrapped (with ErrFormat) when a manifest's format
// version is not one this package reads.
var ErrUnknownFormat = errors.New("unknown sealed-volume format version")

// ParseHeader splits a manifest object into its header and sealed body
// (the header is b[:h.Format.HeaderSize()]). The format field decides the
// nonce's size, so it is checked before the rest is read.
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < len(Magic)+4 {
		return h, nil, formatErr("%d bytes, shorter than a header", len(b))
	}
	if string(b[:len(Magic)]) != Magic {
		return h, nil, formatErr("bad magic")
	}
	p := b[len(Magic):]
	f := Format(binary.BigEndian.Uint32(p))
	if !f.Valid() {
		return h, nil, fmt.Errorf("%w: %w %d: this Keep reads versions %d and %d (written by a newer enarx? open it with that version)", ErrFormat, ErrUnknownFormat, f, V1, V2)
	}
	if len(b) < f.HeaderSize()+TagSize {
		return h, nil, formatErr("%d bytes, shorter than a format %d header and a tag", len(b), f)
	}
	h.Format = f
	p = p[4:]
	copy(h.VolumeID[:], p)
	p = p[IDSize:]
	h.Version = binary.BigEndian.Uint64(p)
	p = p[8:]
	copy(h.Nonce[:f.NonceSize()], p)
	return h, b[f.HeaderSize():], nil
}

// Chunk is one present chunk of a file.
type Chunk struct {
	Index uint32
	Slot  uint32
	Len   uint32
	// Nonce: the first NonceSize bytes of the volume's format; the rest
	// are zero.
	Nonce [MaxNonceSize]byte
	Tag   [TagSize]byte
}

// Node types (WASI filetypes).
const (
	TypeDirectory = 3
	TypeFile      = 4
	TypeSymlink   = 7
)

// Entry is a directory entry.
type Entry struct {
	Name string
	Ino  uint64
}

// Node is one inode of the namespace.
type Node struct {
	Ino              uint64
	Type             uint8
	Atim, Mtim, Ctim int64
	// Entries: a directory's entries.
	Entries []Entry
	// Target: a symlink's target.
	Target string
	// ID, Size and Chunks: a regular file's content.
	ID     ID
	Size   uint64
	Chunks []Chunk
}

// Body is a manifest's plaintext body.
type Body struct {
	ChunkSize uint32
	Root      uint64
	NextIno   uint64
	Nodes     []Node
}

// Limits of names and targets (those of package vfs).
const (
	MaxName   = 255
	MaxTarget = 4096
)

const (
	nodeFixed  = 8 + 1 + 3*8
	entryFixed = 2 + 8
)

// Size is the length of the body's encoding in format f.
func (m *Body) Size(f Format) int {
	n := 4 + 8 + 8 + 4
	for i := range m.Nodes {
		x := &m.Nodes[i]
		n += nodeFixed
		switch x.Type {
		case TypeDirectory:
			n += 4
			for _, e := range x.Entries {
				n += entryFixed + len(e.Name)
			}
		case TypeSymlink:
			n += 2 + len(x.Target)
		case TypeFile:
			n += fileFixed + f.chunkEntry()*len(x.Chunks)
		}
	}
	return n
}

// Append appends the body's encoding in format f (valid) to b. Nodes of
// another type are written without a payload (and refused by ParseBody).
func (m *Body) Append(b []byte, f Format) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = binary.BigEndian.AppendUint64(b, m.Root)
	b = binary.BigEndian.AppendUint64(b, m.NextIno)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Nodes)))
	for i := range m.Nodes {
		x := &m.Nodes[i]
		b = binary.BigEndian.AppendUint64(b, x.Ino)
		b = append(b, x.Type)
		b = binary.BigEndian.AppendUint64(b, uint64(x.Atim))
		b = binary.BigEndian.AppendUint64(b, uint64(x.Mtim))
		b = binary.BigEndian.AppendUint64(b, uint64(x.Ctim))
		switch x.Type {
		case TypeDirectory:
			b = binary.BigEndian.AppendUint32(b, uint32(len(x.Entries)))
			for _, e := range x.Entries {
				b = binary.BigEndian.AppendUint16(b, uint16(len(e.Name)))
				b = append(b, e.Name...)
				b = binary.BigEndian.AppendUint64(b, e.Ino)
			}
		case TypeSymlink:
			b = binary.BigEndian.AppendUint16(b, uint16(len(x.Target)))
			b = append(b, x.Target...)
		case TypeFile:
			b = append(b, x.ID[:]...)
			b = binary.BigEndian.AppendUint64(b, x.Size)
			b = binary.BigEndian.AppendUint32(b, uint32(len(x.Chunks)))
			for _, c := range x.Chunks {
				b = binary.BigEndian.AppendUint32(b, c.Index)
				b = binary.BigEndian.AppendUint32(b, c.Slot)
				b = binary.BigEndian.AppendUint32(b, c.Len)
				b = append(b, c.Nonce[:f.NonceSize()]...)
				b = append(b, c.Tag[:]...)
			}
		}
	}
	return b
}

// MaxFiles is the most regular files a manifest body of size bytes can
// list: each file's node takes at least nodeFixed+fileFixed bytes of it.
// It bounds the content objects a valid volume's directory holds.
func MaxFiles(size int64) int64 {
	if size < 0 {
		return 0
	}
	return size / (nodeFixed + fileFixed)
}

// MaxFileSize bounds a file's size (8 TiB) so that every chunk index is
// below 2^31 at the smallest chunk size.
const MaxFileSize = uint64(MinChunkSize) << 31

// ValidChunkSize reports whether n can be a volume's chunk size.
func ValidChunkSize(n uint32) bool {
	return n >= MinChunkSize && n <= MaxChunkSize && n&(n-1) == 0
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = formatErr("%s: %d bytes left, need %d", what, len(r.b), n)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if p := r.take(8, what); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// ParseBody decodes a body of format f and checks its shape: a valid
// format; a valid chunk size;
// known node types; names of 1 to MaxName bytes and symlink targets of 1
// to MaxTarget bytes; distinct file ids; file sizes at most MaxFileSize;
// chunk indexes increasing, chunks inside their file's size, slots
// distinct within a file; no trailing bytes. The namespace's structure
// (inode numbers, links) is package tree's to check when it loads it.
func ParseBody(b []byte, f Format) (*Body, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("%w: %w %d", ErrFormat, ErrUnknownFormat, f)
	}
	r := &reader{b: b}
	m := &Body{ChunkSize: r.u32("chunk size")}
	if r.err == nil && !ValidChunkSize(m.ChunkSize) {
		return nil, formatErr("chunk size %d", m.ChunkSize)
	}
	m.Root = r.u64("root")
	m.NextIno = r.u64("next ino")
	n := r.u32("node count")
	if r.err != nil {
		return nil, r.err
	}
	if uint64(n) > uint64(len(r.b))/nodeFixed {
		return nil, formatErr("%d nodes in %d bytes", n, len(r.b))
	}
	m.Nodes = make([]Node, n)
	ids := make(map[ID]bool)
	for i := range m.Nodes {
		x := &m.Nodes[i]
		x.Ino = r.u64("ino")
		if p := r.take(1, "type"); p != nil {
			x.Type = p[0]
		}
		x.Atim = int64(r.u64("atim"))
		x.Mtim = int64(r.u64("mtim"))
		x.Ctim = int64(r.u64("ctim"))
		if r.err != nil {
			return nil, r.err
		}
		var err error
		switch x.Type {
		case TypeDirectory:
			err = parseDir(r, x)
		case TypeSymlink:
			tl := uint64(r.u16("target length"))
			x.Target = string(r.take(tl, "target"))
			if r.err == nil && (tl == 0 || tl > MaxTarget) {
				err = formatErr("symlink %d: target of %d bytes", x.Ino, tl)
			}
		case TypeFile:
			err = parseFile(r, x, m.ChunkSize, f)
			if err == nil && r.err == nil {
				if ids[x.ID] {
					err = formatErr("file %s listed twice", x.ID)
				}
				ids[x.ID] = true
			}
		default:
			err = formatErr("node %d has type %d", x.Ino, x.Type)
		}
		if err != nil {
			return nil, err
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if len(r.b) != 0 {
		return nil, formatErr("%d trailing bytes", len(r.b))
	}
	return m, nil
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func parseDir(r *reader, x *Node) error {
	ne := r.u32("entry count")
	if r.err != nil {
		return r.err
	}
	if uint64(ne) > uint64(len(r.b))/(entryFixed+1) {
		return formatErr("directory %d: %d entries in %d bytes", x.Ino, ne, len(r.b))
	}
	x.Entries = make([]Entry, ne)
	for j := range x.Entries {
		nl := uint64(r.u16("name length"))
		name := r.take(nl, "name")
		ino := r.u64("entry ino")
		if r.err != nil {
			return r.err
		}
		if nl == 0 || nl > MaxName {
			return formatErr("directory %d: a name of %d bytes", x.Ino, nl)
		}
		x.Entries[j] = Entry{Name: string(name), Ino: ino}
	}
	return nil
}

func parseFile(r *reader, x *Node, cs uint32, f Format) error {
	copy(x.ID[:], r.take(IDSize, "file id"))
	x.Size = r.u64("file size")
	nc := r.u32("chunk count")
	if r.err != nil {
		return r.err
	}
	if x.Size > MaxFileSize {
		return formatErr("file %s: size %d over %d", x.ID, x.Size, MaxFileSize)
	}
	if uint64(nc) > uint64(len(r.b))/uint64(f.chunkEntry()) {
		return formatErr("file %s: %d chunks in %d bytes", x.ID, nc, len(r.b))
	}
	nchunks := (x.Size + uint64(cs) - 1) / uint64(cs)
	x.Chunks = make([]Chunk, nc)
	slots := make(map[uint32]bool, nc)
	for j := range x.Chunks {
		c := &x.Chunks[j]
		c.Index = r.u32("chunk index")
		c.Slot = r.u32("chunk slot")
		c.Len = r.u32("chunk length")
		copy(c.Nonce[:], r.take(uint64(f.NonceSize()), "chunk nonce"))
		copy(c.Tag[:], r.take(TagSize, "chunk tag"))
		if r.err != nil {
			return r.err
		}
		switch {
		case uint64(c.Index) >= nchunks:
			return formatErr("file %s: chunk %d beyond its size %d", x.ID, c.Index, x.Size)
		case c.Len == 0 || c.Len > cs:
			return formatErr("file %s: chunk %d length %d", x.ID, c.Index, c.Len)
		case j > 0 && c.Index <= x.Chunks[j-1].Index:
			return formatErr("file %s: chunk %d out of order", x.ID, c.Index)
		case c.Slot == NoSlot:
			return formatErr("file %s: chunk %d has no slot", x.ID, c.Index)
		case slots[c.Slot]:
			return formatErr("file %s: slot %d used twice", x.ID, c.Slot)
		}
		slots[c.Slot] = true
	}
	return nil
}
