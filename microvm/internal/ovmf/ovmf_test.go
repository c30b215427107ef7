package ovmf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

func TestGUIDRoundTrip(t *testing.T) {
	g := MustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	// The first three fields are stored little-endian.
	want := []byte{0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d}
	if !bytes.Equal(g[:], want) {
		t.Fatalf("bytes %x, want %x", g[:], want)
	}
	if g.String() != "96b582de-1fb2-45f7-baea-a366c55a082d" {
		t.Fatalf("String %s", g)
	}
	for _, bad := range []string{"", "96b582de1fb245f7baeaa366c55a082d", "96b582de-1fb2-45f7-baea-a366c55a082", "zzb582de-1fb2-45f7-baea-a366c55a082d"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

type ent struct {
	g    GUID
	data []byte
}

// buildTable lays entries (first = lowest address) and the footer out at the
// end of a size-byte image of filler.
func buildTable(size int, entries []ent) []byte {
	img := bytes.Repeat([]byte{0xcc}, size)
	end := size - TrailerSize
	pos := end - entryHeader
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		n := len(e.data) + entryHeader
		copy(img[pos-n:], e.data)
		binary.LittleEndian.PutUint16(img[pos-entryHeader:], uint16(n))
		copy(img[pos-16:], e.g[:])
		pos -= n
	}
	binary.LittleEndian.PutUint16(img[end-entryHeader:], uint16(end-pos))
	copy(img[end-16:], FooterGUID[:])
	return img
}

func TestParseTable(t *testing.T) {
	meta := []byte("ASEV\x14\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00pad!")
	img := buildTable(4096, []ent{
		{SEVESResetBlockGUID, []byte{4, 0xb0, 0x80, 0}},
		{SEVHashTableGUID, []byte{0, 0x0c, 0x81, 0, 0, 4, 0, 0}},
		{SEVMetadataGUID, []byte{0x00, 0x01, 0, 0}},
	})
	copy(img[4096-0x100:], meta)
	tab, err := ParseTable(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Entries) != 3 || tab.Entries[0].GUID != SEVESResetBlockGUID || tab.Entries[2].GUID != SEVMetadataGUID {
		t.Fatalf("entries %+v", tab.Entries)
	}
	if v, ok, err := tab.Uint32(SEVESResetBlockGUID); !ok || err != nil || v != 0x80b004 {
		t.Errorf("reset block %#x %v %v", v, ok, err)
	}
	if _, ok := tab.Find(TDXMetadataGUID); ok {
		t.Error("found an absent GUID")
	}
	md, err := tab.Metadata(img, SEVMetadataGUID, "ASEV", 16)
	if err != nil || len(md) != 20 {
		t.Fatalf("metadata %q, %v", md, err)
	}
	if _, err := tab.Metadata(img, TDXMetadataGUID, "TDVF", 16); err == nil || !strings.Contains(err.Error(), "no TDVF metadata") {
		t.Errorf("missing TDVF metadata: %v", err)
	}

	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"no footer":       {make([]byte, 4096), "no OVMF footer GUID table"},
		"tiny":            {make([]byte, 10), "only 10 bytes"},
		"duplicate":       {buildTable(4096, []ent{{SEVMetadataGUID, []byte{1, 2, 3, 4}}, {SEVMetadataGUID, []byte{1, 2, 3, 4}}}), "appears twice"},
		"entry too big":   {corruptFirstLength(buildTable(4096, []ent{{SEVMetadataGUID, []byte{1, 2, 3, 4}}}), 0x7000), "outside"},
		"entry too small": {corruptFirstLength(buildTable(4096, []ent{{SEVMetadataGUID, []byte{1, 2, 3, 4}}}), 3), "outside"},
	} {
		_, err := ParseTable(c.img)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		if name == "no footer" && !errors.Is(err, ErrNoTable) {
			t.Errorf("no footer: %v is not ErrNoTable", err)
		}
	}
}

// corruptFirstLength overwrites the length of the entry nearest the footer.
func corruptFirstLength(img []byte, n uint16) []byte {
	p := len(img) - TrailerSize - entryHeader - entryHeader
	binary.LittleEndian.PutUint16(img[p:], n)
	return img
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		buildTable(256, []ent{{SEVESResetBlockGUID, []byte{4, 0xb0, 0x80, 0}}, {SEVMetadataGUID, []byte{0x40, 0, 0, 0}}}),
		buildTable(128, nil),
		buildTable(128, []ent{{TDXMetadataGUID, nil}}),
		make([]byte, 50),
	}
}

// FuzzParseTable: ParseTable never panics, and an accepted table is
// consistent: entries are in image order, end to end, the last one ending
// where the footer entry starts, every Data inside the image, no GUID twice,
// and Find returns each entry's own data.
func FuzzParseTable(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		tab, err := ParseTable(img)
		if err != nil {
			return
		}
		footer := len(img) - TrailerSize - entryHeader
		total := int(binary.LittleEndian.Uint16(img[footer:]))
		pos := footer + entryHeader - total
		seen := map[GUID]bool{}
		for i, e := range tab.Entries {
			if e.Offset != pos || e.Offset < 0 || e.Offset+len(e.Data)+entryHeader > footer {
				t.Fatalf("entry %d at %d (+%d) does not follow %d within %d", i, e.Offset, len(e.Data), pos, footer)
			}
			if !bytes.Equal(e.Data, img[e.Offset:e.Offset+len(e.Data)]) || GUID(img[e.Offset+len(e.Data)+2:]) != e.GUID {
				t.Fatalf("entry %d does not describe the image bytes", i)
			}
			if seen[e.GUID] {
				t.Fatalf("GUID %s twice", e.GUID)
			}
			seen[e.GUID] = true
			if d, ok := tab.Find(e.GUID); !ok || !bytes.Equal(d, e.Data) {
				t.Fatalf("Find(%s) does not return entry %d", e.GUID, i)
			}
			pos = e.Offset + len(e.Data) + entryHeader
		}
		if pos != footer {
			t.Fatalf("entries end at %d, the footer entry starts at %d", pos, footer)
		}
	})
}

func TestFuzzSeedCorpus(t *testing.T) {
	testutil.CheckSeedCorpus(t, "FuzzParseTable", fuzzSeeds())
}
