package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

var formats = []Format{V1, V2}

// nonce is a nonce of format f made of seed bytes (none past f's size).
func nonce(f Format, seed byte) [MaxNonceSize]byte {
	var n [MaxNonceSize]byte
	for i := range f.NonceSize() {
		n[i] = seed + byte(i)
	}
	return n
}

func sampleBody(f Format) *Body {
	return &Body{
		ChunkSize: DefaultChunkSize,
		Root:      1,
		NextIno:   5,
		Nodes: []Node{
			{Ino: 1, Type: TypeDirectory, Atim: 1, Mtim: 2, Ctim: -3, Entries: []Entry{{"a", 2}, {"l", 3}, {"d", 4}}},
			{Ino: 2, Type: TypeFile, ID: ID{1, 2, 3}, Size: 3*DefaultChunkSize + 5, Chunks: []Chunk{
				{Index: 0, Slot: 4, Len: DefaultChunkSize, Nonce: nonce(f, 1), Tag: [16]byte{2}},
				{Index: 3, Slot: 0, Len: PadSize, Nonce: nonce(f, 3), Tag: [16]byte{4}},
			}},
			{Ino: 3, Type: TypeSymlink, Target: "a"},
			{Ino: 4, Type: TypeDirectory},
		},
	}
}

func TestBodyRoundTrip(t *testing.T) {
	for _, f := range formats {
		m := sampleBody(f)
		b := m.Append(nil, f)
		if len(b) != m.Size(f) {
			t.Fatalf("format %d: encoded %d bytes, Size says %d", f, len(b), m.Size(f))
		}
		got, err := ParseBody(b, f)
		if err != nil {
			t.Fatalf("format %d: %v", f, err)
		}
		if got.Nodes[1].Chunks[1].Nonce != nonce(f, 3) {
			t.Fatalf("format %d: chunk nonce %x", f, got.Nodes[1].Chunks[1].Nonce)
		}
		if again := got.Append(nil, f); !bytes.Equal(again, b) {
			t.Fatalf("format %d: decode/encode changed the body", f)
		}
		// Every strict prefix is refused.
		for i := range b {
			if _, err := ParseBody(b[:i], f); !errors.Is(err, ErrFormat) {
				t.Fatalf("format %d: prefix of %d bytes: %v", f, i, err)
			}
		}
	}
	// The formats differ in each chunk entry's nonce only; a body does
	// not parse as the other format's.
	m := sampleBody(V1)
	if d := m.Size(V2) - m.Size(V1); d != 2*(V2.NonceSize()-V1.NonceSize()) {
		t.Fatalf("a body with two chunks grows by %d bytes in format 2", d)
	}
	if _, err := ParseBody(m.Append(nil, V1), V2); !errors.Is(err, ErrFormat) {
		t.Fatalf("format 1 body parsed as format 2: %v", err)
	}
	if _, err := ParseBody(sampleBody(V2).Append(nil, V2), V1); !errors.Is(err, ErrFormat) {
		t.Fatalf("format 2 body parsed as format 1: %v", err)
	}
	for _, f := range []Format{0, 3} {
		if _, err := ParseBody(m.Append(nil, V1), f); !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("format %d: %v", f, err)
		}
	}
}

func TestBodyRefused(t *testing.T) {
	for name, mutate := range map[string]func(*Body){
		"chunk size":      func(m *Body) { m.ChunkSize = 3000 },
		"node type":       func(m *Body) { m.Nodes[3].Type = 9 },
		"empty name":      func(m *Body) { m.Nodes[0].Entries[0].Name = "" },
		"long name":       func(m *Body) { m.Nodes[0].Entries[0].Name = string(make([]byte, 256)) },
		"empty target":    func(m *Body) { m.Nodes[2].Target = "" },
		"chunk past size": func(m *Body) { m.Nodes[1].Size = 3 * DefaultChunkSize },
		"chunk length":    func(m *Body) { m.Nodes[1].Chunks[1].Len = DefaultChunkSize + 1 },
		"zero length":     func(m *Body) { m.Nodes[1].Chunks[0].Len = 0 },
		"order":           func(m *Body) { m.Nodes[1].Chunks[1].Index = 0 },
		"no slot":         func(m *Body) { m.Nodes[1].Chunks[0].Slot = NoSlot },
		"slot twice":      func(m *Body) { m.Nodes[1].Chunks[1].Slot = 4 },
		"size":            func(m *Body) { m.Nodes[1].Size = MaxFileSize + 1 },
		"file id twice": func(m *Body) {
			m.Nodes = append(m.Nodes, Node{Ino: 6, Type: TypeFile, ID: m.Nodes[1].ID})
		},
	} {
		for _, f := range formats {
			m := sampleBody(f)
			mutate(m)
			if _, err := ParseBody(m.Append(nil, f), f); !errors.Is(err, ErrFormat) {
				t.Errorf("format %d: %s: %v", f, name, err)
			}
		}
	}
	for _, f := range formats {
		b := sampleBody(f).Append(nil, f)
		if _, err := ParseBody(append(b, 0), f); !errors.Is(err, ErrFormat) {
			t.Errorf("format %d: trailing byte: %v", f, err)
		}
	}
}

func TestHeader(t *testing.T) {
	for f, size := range map[Format]int{V1: 48, V2: 60} {
		h := Header{Format: f, VolumeID: ID{9}, Version: 77, Nonce: nonce(f, 5)}
		b := h.Append(nil)
		if len(b) != size || f.HeaderSize() != size {
			t.Fatalf("format %d: header of %d bytes, HeaderSize %d, want %d", f, len(b), f.HeaderSize(), size)
		}
		got, rest, err := ParseHeader(append(b, make([]byte, TagSize)...))
		if err != nil || got != h || len(rest) != TagSize {
			t.Fatalf("format %d: %+v %d %v", f, got, len(rest), err)
		}
		// A header and a tag, no less.
		if _, _, err := ParseHeader(append(b, make([]byte, TagSize-1)...)); !errors.Is(err, ErrFormat) {
			t.Errorf("format %d: a header and 15 bytes: %v", f, err)
		}
		for i := range b {
			bad := append([]byte(nil), b...)
			bad[i] ^= 1
			if i < len(Magic)+4 {
				if _, _, err := ParseHeader(append(bad, make([]byte, TagSize)...)); err == nil {
					t.Errorf("format %d: byte %d changed: accepted", f, i)
				}
			}
		}
		// Every short prefix is refused without a panic.
		for i := range b {
			if _, _, err := ParseHeader(b[:i]); !errors.Is(err, ErrFormat) {
				t.Errorf("format %d: prefix of %d bytes: %v", f, i, err)
			}
		}
	}
	// The format field decides the size: a format 1 object just long
	// enough is too short as format 2.
	h := Header{Format: V1}
	b := append(h.Append(nil), make([]byte, TagSize)...)
	b[len(Magic)+3] = byte(V2)
	if _, _, err := ParseHeader(b); !errors.Is(err, ErrFormat) {
		t.Errorf("a format 1 sized object labelled format 2: %v", err)
	}
	for _, f := range []uint32{0, 3, 1 << 31} {
		h := Header{Format: V2}
		b := append(h.Append(nil), make([]byte, TagSize)...)
		binary.BigEndian.PutUint32(b[len(Magic):], f)
		_, _, err := ParseHeader(b)
		if !errors.Is(err, ErrFormat) || !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "reads versions 1 and 2") {
			t.Errorf("format %d: %v", f, err)
		}
	}
}

func TestObjectName(t *testing.T) {
	id := ID{0xab, 0xcd}
	got, ok := ParseObjectName(ObjectName(id))
	if !ok || got != id {
		t.Fatal("object name does not round-trip")
	}
	for _, s := range []string{"manifest", "c-", "c-ABCD" + ObjectName(id)[6:], ObjectName(id) + "0", "x" + ObjectName(id)[1:]} {
		if _, ok := ParseObjectName(s); ok {
			t.Errorf("%q parsed as an object name", s)
		}
	}
}

// TestParseID: an id reads back from its String form, and only from it
// (Enarx.toml volume_id).
func TestParseID(t *testing.T) {
	id := ID{0xab, 0xcd, 15: 0x01}
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%s) = %s, %v", id, got, err)
	}
	for _, s := range []string{"", id.String()[2:], id.String() + "00", strings.ToUpper(id.String()), "g" + id.String()[1:], " " + id.String()[1:]} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("%q parsed as an id", s)
		}
	}
}

func bodySeeds() [][]byte {
	empty := &Body{ChunkSize: DefaultChunkSize, Root: 1, NextIno: 2, Nodes: []Node{{Ino: 1, Type: TypeDirectory}}}
	// Format 1's first (seed-0 to seed-2, unchanged), then format 2's.
	return [][]byte{sampleBody(V1).Append(nil, V1), empty.Append(nil, V1), {0, 1, 0, 0}, sampleBody(V2).Append(nil, V2)}
}

// FuzzParseBody: no input panics or hangs as a body of either format,
// and whatever is accepted encodes back to the same bytes in that
// format (one encoding per body).
func FuzzParseBody(f *testing.F) {
	seeds := bodySeeds()
	testutil.CheckSeedCorpus(f, "FuzzParseBody", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fm := range formats {
			m, err := ParseBody(b, fm)
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("format %d: error not wrapping ErrFormat: %v", fm, err)
				}
				continue
			}
			if again := m.Append(nil, fm); !bytes.Equal(again, b) {
				t.Fatalf("format %d: accepted body re-encodes differently", fm)
			}
		}
	})
}

func headerSeeds() [][]byte {
	var seeds [][]byte
	for _, f := range formats {
		h := Header{Format: f, VolumeID: ID{1, 15: 2}, Version: 3, Nonce: nonce(f, 4)}
		seeds = append(seeds, append(h.Append(nil), bytes.Repeat([]byte{0xaa}, TagSize+5)...))
	}
	unknown := append([]byte(nil), seeds[1]...)
	unknown[len(Magic)+3] = 3
	return append(seeds, unknown, seeds[1][:V1.HeaderSize()+TagSize])
}

// FuzzParseHeader: the header comes straight from the host. No input
// panics; an accepted one is of a known format, re-encodes to the
// object's first Format.HeaderSize() bytes, and leaves at least a tag.
func FuzzParseHeader(f *testing.F) {
	seeds := headerSeeds()
	testutil.CheckSeedCorpus(f, "FuzzParseHeader", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not wrapping ErrFormat: %v", err)
			}
			return
		}
		n := h.Format.HeaderSize()
		if !h.Format.Valid() || len(rest) < TagSize || n+len(rest) != len(b) || !bytes.Equal(h.Append(nil), b[:n]) {
			t.Fatalf("accepted header %+v does not re-encode to the object's start", h)
		}
	})
}

// TestMaxFiles: a body listing n files (the smallest file nodes there
// are: no chunks, no directory entries) is at least as large as MaxFiles
// says n files need, and one file fewer fits no more.
func TestMaxFiles(t *testing.T) {
	for _, f := range formats {
		for _, n := range []int{0, 1, 2, 268, 1000} {
			b := &Body{ChunkSize: DefaultChunkSize, Root: 1, NextIno: 1}
			for i := range n {
				b.Nodes = append(b.Nodes, Node{Ino: uint64(i + 2), Type: TypeFile, ID: ID{byte(i), byte(i >> 8)}})
			}
			size := int64(b.Size(f))
			if got := MaxFiles(size); got < int64(n) {
				t.Errorf("format %d: a body of %d files is %d bytes, and MaxFiles(%d) = %d", f, n, size, size, got)
			}
			if n > 0 && MaxFiles(size-int64(nodeFixed+fileFixed)-24) >= int64(n) {
				t.Errorf("format %d: MaxFiles allows %d files in a body too small for them", f, n)
			}
		}
	}
	if MaxFiles(-1) != 0 {
		t.Error("MaxFiles of a negative size")
	}
}
