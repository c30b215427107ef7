// Package format is the byte layout of a sealed volume's manifest: the
// plaintext header that names the volume and its version, and the body
// (sealed by package seal) that holds the serialized directory tree and
// every file's chunk table. It only encodes and decodes: it knows no keys
// and checks nothing but shape. Package seal authenticates the bytes;
// package sealed decides what to accept (the volume policy).
//
// Trust: ParseHeader reads bytes straight from the untrusted host and
// ParseBody reads bytes that package seal has authenticated; both bound
// every count and length by the input's size, so no input panics, hangs
// or allocates more than a small multiple of its own length.
//
// Manifest object (all integers big-endian):
//
//	header (HeaderSize bytes, the AEAD's additional data):
//	  magic      [8]  "enxseal\x00"
//	  format     u32  FormatVersion
//	  volume id  [16] random, fixed at creation
//	  version    u64  the volume version, +1 at every commit
//	  nonce      [12] the body's AES-GCM nonce
//	sealed body: AES-256-GCM(body) ‖ 16-byte tag
//
// Body:
//
//	chunk size u32  a power of two in [MinChunkSize, MaxChunkSize]
//	tree len   u64, tree bytes (the namespace, serialized by package tree)
//	file count u32, then per file:
//	  file id    [16] random, fixed at creation; also names its object
//	  size       u64  the plaintext size
//	  chunks     u32, then per present chunk (index increasing; a chunk
//	                  not listed is a hole and reads as zeros):
//	    index u32, slot u32, nonce [12], tag [16]
//
// A content object (named ObjectName(file id)) holds slot s at byte
// offset s × chunk size: the AES-GCM ciphertext of one chunk without its
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

// FormatVersion is the layout this package writes and reads.
const FormatVersion = 1

// Sizes of the fixed parts.
const (
	IDSize     = 16
	NonceSize  = 12
	TagSize    = 16
	HeaderSize = len(Magic) + 4 + IDSize + 8 + NonceSize
	chunkSize  = 4 + 4 + NonceSize + TagSize // one chunk entry
	fileFixed  = IDSize + 8 + 4
)

// Chunk size bounds.
const (
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 1 << 20
	DefaultChunkSize = 64 << 10
)

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
	VolumeID ID
	Version  uint64
	Nonce    [NonceSize]byte
}

// Append appends the header's encoding to b.
func (h *Header) Append(b []byte) []byte {
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, FormatVersion)
	b = append(b, h.VolumeID[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Version)
	return append(b, h.Nonce[:]...)
}

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("malformed sealed-volume manifest")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// ParseHeader splits a manifest object into its header and sealed body.
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < HeaderSize+TagSize {
		return h, nil, formatErr("%d bytes, shorter than a header and a tag", len(b))
	}
	if string(b[:len(Magic)]) != Magic {
		return h, nil, formatErr("bad magic")
	}
	p := b[len(Magic):]
	if v := binary.BigEndian.Uint32(p); v != FormatVersion {
		return h, nil, formatErr("format version %d, this Keep reads %d", v, FormatVersion)
	}
	p = p[4:]
	copy(h.VolumeID[:], p)
	p = p[IDSize:]
	h.Version = binary.BigEndian.Uint64(p)
	p = p[8:]
	copy(h.Nonce[:], p)
	return h, b[HeaderSize:], nil
}

// Chunk is one present chunk of a file.
type Chunk struct {
	Index uint32
	Slot  uint32
	Nonce [NonceSize]byte
	Tag   [TagSize]byte
}

// File is one file's content record.
type File struct {
	ID     ID
	Size   uint64
	Chunks []Chunk
}

// Body is a manifest's plaintext body.
type Body struct {
	ChunkSize uint32
	Tree      []byte
	Files     []File
}

// Size is the length of the body's encoding.
func (m *Body) Size() int {
	n := 4 + 8 + len(m.Tree) + 4
	for i := range m.Files {
		n += fileFixed + chunkSize*len(m.Files[i].Chunks)
	}
	return n
}

// Append appends the body's encoding to b.
func (m *Body) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = binary.BigEndian.AppendUint64(b, uint64(len(m.Tree)))
	b = append(b, m.Tree...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Files)))
	for i := range m.Files {
		f := &m.Files[i]
		b = append(b, f.ID[:]...)
		b = binary.BigEndian.AppendUint64(b, f.Size)
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.Chunks)))
		for _, c := range f.Chunks {
			b = binary.BigEndian.AppendUint32(b, c.Index)
			b = binary.BigEndian.AppendUint32(b, c.Slot)
			b = append(b, c.Nonce[:]...)
			b = append(b, c.Tag[:]...)
		}
	}
	return b
}

// MaxFileSize bounds a file's size so that every chunk index fits a u32
// at the smallest chunk size.
const MaxFileSize = uint64(MinChunkSize) << 32

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

// ParseBody decodes a body and checks its shape: a valid chunk size,
// distinct file ids, sizes at most MaxFileSize, chunk indexes increasing
// and inside the file's size, distinct slots within a file, no trailing
// bytes. The returned body's Tree aliases b.
func ParseBody(b []byte) (*Body, error) {
	r := &reader{b: b}
	m := &Body{ChunkSize: r.u32("chunk size")}
	if r.err == nil && !ValidChunkSize(m.ChunkSize) {
		return nil, formatErr("chunk size %d", m.ChunkSize)
	}
	m.Tree = r.take(r.u64("tree length"), "tree")
	n := r.u32("file count")
	if r.err != nil {
		return nil, r.err
	}
	if uint64(n) > uint64(len(r.b))/fileFixed {
		return nil, formatErr("%d files in %d bytes", n, len(r.b))
	}
	m.Files = make([]File, n)
	seen := make(map[ID]bool, n)
	for i := range m.Files {
		f := &m.Files[i]
		copy(f.ID[:], r.take(IDSize, "file id"))
		f.Size = r.u64("file size")
		nc := r.u32("chunk count")
		if r.err != nil {
			return nil, r.err
		}
		if seen[f.ID] {
			return nil, formatErr("file %s listed twice", f.ID)
		}
		seen[f.ID] = true
		if f.Size > MaxFileSize {
			return nil, formatErr("file %s: size %d over %d", f.ID, f.Size, MaxFileSize)
		}
		if uint64(nc) > uint64(len(r.b))/chunkSize {
			return nil, formatErr("file %s: %d chunks in %d bytes", f.ID, nc, len(r.b))
		}
		nchunks := (f.Size + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize)
		f.Chunks = make([]Chunk, nc)
		slots := make(map[uint32]bool, nc)
		for j := range f.Chunks {
			c := &f.Chunks[j]
			c.Index = r.u32("chunk index")
			c.Slot = r.u32("chunk slot")
			copy(c.Nonce[:], r.take(NonceSize, "chunk nonce"))
			copy(c.Tag[:], r.take(TagSize, "chunk tag"))
			if r.err != nil {
				return nil, r.err
			}
			switch {
			case uint64(c.Index) >= nchunks:
				return nil, formatErr("file %s: chunk %d beyond its size %d", f.ID, c.Index, f.Size)
			case j > 0 && c.Index <= f.Chunks[j-1].Index:
				return nil, formatErr("file %s: chunk %d out of order", f.ID, c.Index)
			case c.Slot == NoSlot:
				return nil, formatErr("file %s: chunk %d has no slot", f.ID, c.Index)
			case slots[c.Slot]:
				return nil, formatErr("file %s: slot %d used twice", f.ID, c.Slot)
			}
			slots[c.Slot] = true
		}
	}
	if len(r.b) != 0 {
		return nil, formatErr("%d trailing bytes", len(r.b))
	}
	return m, nil
}
