package format

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

func sampleBody() *Body {
	return &Body{
		ChunkSize: DefaultChunkSize,
		Root:      1,
		NextIno:   5,
		Nodes: []Node{
			{Ino: 1, Type: TypeDirectory, Atim: 1, Mtim: 2, Ctim: -3, Entries: []Entry{{"a", 2}, {"l", 3}, {"d", 4}}},
			{Ino: 2, Type: TypeFile, ID: ID{1, 2, 3}, Size: 3*DefaultChunkSize + 5, Chunks: []Chunk{
				{Index: 0, Slot: 4, Len: DefaultChunkSize, Nonce: [12]byte{1}, Tag: [16]byte{2}},
				{Index: 3, Slot: 0, Len: PadSize, Nonce: [12]byte{3}, Tag: [16]byte{4}},
			}},
			{Ino: 3, Type: TypeSymlink, Target: "a"},
			{Ino: 4, Type: TypeDirectory},
		},
	}
}

func TestBodyRoundTrip(t *testing.T) {
	m := sampleBody()
	b := m.Append(nil)
	if len(b) != m.Size() {
		t.Fatalf("encoded %d bytes, Size says %d", len(b), m.Size())
	}
	got, err := ParseBody(b)
	if err != nil {
		t.Fatal(err)
	}
	if again := got.Append(nil); !bytes.Equal(again, b) {
		t.Fatal("decode/encode changed the body")
	}
	// Every strict prefix is refused.
	for i := range b {
		if _, err := ParseBody(b[:i]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
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
		m := sampleBody()
		mutate(m)
		if _, err := ParseBody(m.Append(nil)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	b := sampleBody().Append(nil)
	if _, err := ParseBody(append(b, 0)); !errors.Is(err, ErrFormat) {
		t.Errorf("trailing byte: %v", err)
	}
}

func TestHeader(t *testing.T) {
	h := Header{VolumeID: ID{9}, Version: 77, Nonce: [12]byte{5}}
	b := h.Append(nil)
	if len(b) != HeaderSize {
		t.Fatalf("header of %d bytes", len(b))
	}
	got, rest, err := ParseHeader(append(b, make([]byte, TagSize)...))
	if err != nil || got != h || len(rest) != TagSize {
		t.Fatalf("%+v %d %v", got, len(rest), err)
	}
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 1
		if i < len(Magic)+4 {
			if _, _, err := ParseHeader(append(bad, make([]byte, TagSize)...)); err == nil {
				t.Errorf("byte %d changed: accepted", i)
			}
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
	return [][]byte{sampleBody().Append(nil), empty.Append(nil), {0, 1, 0, 0}}
}

// FuzzParseBody: no input panics or hangs, and whatever is accepted
// encodes back to the same bytes (one encoding per body).
func FuzzParseBody(f *testing.F) {
	seeds := bodySeeds()
	testutil.CheckSeedCorpus(f, "FuzzParseBody", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseBody(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not wrapping ErrFormat: %v", err)
			}
			return
		}
		if again := m.Append(nil); !bytes.Equal(again, b) {
			t.Fatalf("accepted body re-encodes differently")
		}
	})
}
