package tdxmeasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

type vector struct {
	Name       string `json:"name"`
	Firmware   string `json:"firmware"`
	SHA256     string `json:"sha256"`
	SinglePass string `json:"single_pass"`
	TwoPass    string `json:"two_pass"`
}

// MRTDs must equal the independent calculator's (testdata/vectors.json) for
// both page orders.
func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		Tool    string   `json:"tool"`
		Vectors []vector `json:"vectors"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vf); err != nil || len(vf.Vectors) == 0 {
		t.Fatalf("testdata/vectors.json: %v (%d vectors)", err, len(vf.Vectors))
	}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var img []byte
			if v.Firmware == "synthetic" {
				img = syntheticTDVF()
				if h := sha256.Sum256(img); hex.EncodeToString(h[:]) != v.SHA256 {
					t.Fatalf("synthetic image SHA-256 %x, the vector has %s", h, v.SHA256)
				}
			} else {
				img = loadGz(t, v.Firmware, v.SHA256)
			}
			for variant, want := range map[Variant]string{SinglePass: v.SinglePass, TwoPass: v.TwoPass} {
				d, err := MRTD(img, variant)
				if err != nil {
					t.Fatal(err)
				}
				if d.String() != want {
					t.Errorf("%s: %s, reference %s", variant, d, want)
				}
			}
		})
	}
}

func TestParseDebianTDX(t *testing.T) {
	fw, err := ParseFirmware(debianTDX(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Section{
		{0x84000, 0x37c000, 0xffc84000, 0x37c000, SectionBFV, AttrMRExtend},
		{0, 0x84000, 0xffc00000, 0x84000, SectionCFV, 0},
		{0, 0, 0x810000, 0x10000, SectionTempMem, 0},
		{0, 0, 0x80b000, 0x2000, SectionTempMem, 0},
		{0, 0, 0x809000, 0x2000, SectionTDHOB, 0},
		{0, 0, 0x800000, 0x6000, SectionTempMem, 0},
	}
	if len(fw.Sections) != len(want) {
		t.Fatalf("sections %+v", fw.Sections)
	}
	for i := range want {
		if fw.Sections[i] != want[i] {
			t.Errorf("section %d: %+v, want %+v", i, fw.Sections[i], want[i])
		}
	}
}

// Measured bytes change MRTD; unmeasured ones (the CFV, PermMem) do not, and
// neither does anything outside the sections; the order variants differ.
func TestMRTDProperties(t *testing.T) {
	s := defaultSynthSpec()
	// Metadata in the (unmeasured) CFV, so that changing sections changes
	// no measured byte.
	s.metaOff = s.size - 0x100
	img := buildTDVF(s)
	ref, err := MRTD(img, SinglePass)
	if err != nil {
		t.Fatal(err)
	}
	two, _ := MRTD(img, TwoPass)
	if two == ref {
		t.Error("single-pass and two-pass MRTDs are equal")
	}
	flip := func(off int) Digest {
		c := bytes.Clone(img)
		c[off] ^= 1
		d, err := MRTD(c, SinglePass)
		if err != nil {
			t.Fatalf("offset %#x: %v", off, err)
		}
		return d
	}
	bfv := s.sections[0]
	for _, off := range []int{int(bfv.DataOffset), int(bfv.DataOffset) + 0x1234, int(bfv.DataOffset) + 0x10000 - 1} {
		if flip(off) == ref {
			t.Errorf("flipping BFV byte %#x left MRTD unchanged", off)
		}
	}
	if flip(0x10) != ref {
		t.Error("flipping a CFV byte (unmeasured) changed MRTD")
	}
	moved := s
	moved.sections = append([]Section(nil), s.sections...)
	moved.sections[3].MemoryAddress += 0x1000 // TD_HOB: address only
	if d, err := MRTD(buildTDVF(moved), SinglePass); err != nil || d == ref {
		t.Errorf("moving the TD HOB: %s, %v", d, err)
	}
	noPerm := s
	noPerm.sections = s.sections[:4]
	if d, err := MRTD(buildTDVF(noPerm), SinglePass); err != nil || d != ref {
		t.Errorf("dropping the PermMem section (never added) changed MRTD: %s, %v", d, err)
	}
}

func TestErrors(t *testing.T) {
	mut := func(f func(s *synthSpec)) []byte {
		s := defaultSynthSpec()
		s.sections = append([]Section(nil), s.sections...)
		f(&s)
		return buildTDVF(s)
	}
	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"no table":      {genBytes("x", 8192), "not a TDX (TDVF) firmware build"},
		"AmdSev-only":   {stripTDX(t, debianAmdSev(t)), "no TDX metadata"},
		"unaligned":     {mut(func(s *synthSpec) { s.sections[2].MemoryAddress += 8 }), "not page-aligned"},
		"overlap":       {mut(func(s *synthSpec) { s.sections[2].MemoryAddress = 0x808000 }), "overlap"},
		"data outside":  {mut(func(s *synthSpec) { s.sections[0].DataOffset += 0x1000 }), "outside the"},
		"short extend":  {mut(func(s *synthSpec) { s.sections[0].RawDataSize -= 0x1000 }), "MR_EXTEND over"},
		"two HOBs":      {mut(func(s *synthSpec) { s.sections[2].Type = SectionTDHOB }), "2 TD_HOB sections"},
		"payload":       {mut(func(s *synthSpec) { s.sections[2].Type = 5 }), "type not supported by QEMU"},
		"aug on temp":   {mut(func(s *synthSpec) { s.sections[2].Attributes = AttrPageAug }), "PAGE_AUG must be set exactly on PermMem"},
		"hob with data": {mut(func(s *synthSpec) { s.sections[3].RawDataSize = 0x1000 }), "want none"},
		"count":         {tooManySections(), "do not fit"},
		"version":       {withVersion(2), "version 2"},
	} {
		_, err := MRTD(c.img, SinglePass)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
	if _, err := (&Firmware{}).MRTD(Variant(7)); err == nil {
		t.Error("unknown variant accepted")
	}
}

func tooManySections() []byte {
	s := defaultSynthSpec()
	img := buildTDVF(s)
	binary.LittleEndian.PutUint32(img[len(img)-s.metaOff+12:], 1000)
	return img
}

func withVersion(v uint32) []byte {
	s := defaultSynthSpec()
	img := buildTDVF(s)
	binary.LittleEndian.PutUint32(img[len(img)-s.metaOff+8:], v)
	return img
}

// stripTDX renames the TDX metadata GUID in the footer table.
func stripTDX(t testing.TB, img []byte) []byte {
	img = bytes.Clone(img)
	g := []byte{0x35, 0x65, 0x7a, 0xe4} // first bytes of e47a6535-… on disk
	i := bytes.LastIndex(img, g)
	if i < 0 {
		t.Fatal("no TDX metadata GUID")
	}
	img[i] ^= 0xff
	return img
}

func fuzzSeeds() [][]byte {
	small := defaultSynthSpec()
	small.size, small.zeroFill = 16<<10, true
	small.sections = []Section{
		{0x1000, 0x2000, 1<<32 - 0x3000, 0x2000, SectionBFV, AttrMRExtend},
		{0, 0x1000, 1<<32 - 0x4000, 0x1000, SectionCFV, 0},
		{0, 0, 0x809000, 0x1000, SectionTDHOB, 0},
		{0, 0, 0x900000, 0x1000, SectionPermMem, AttrPageAug},
	}
	bad := small
	bad.sections = append([]Section(nil), small.sections...)
	bad.sections[0].RawDataSize = 0x1000
	// One section more than MaxSections, each of them valid.
	many := small
	many.metaOff = 0x2400
	many.sections = append([]Section(nil), small.sections...)
	for i := len(many.sections); i <= MaxSections; i++ {
		many.sections = append(many.sections, Section{0, 0, 1<<32 + uint64(i)*pageSize, pageSize, SectionPermMem, AttrPageAug})
	}
	var out [][]byte
	for _, s := range []synthSpec{small, bad} {
		out = append(out, bytes.TrimLeft(buildTDVF(s), "\x00"))
	}
	return append(out, []byte{}, bytes.TrimLeft(buildTDVF(many), "\x00"))
}

// padImage puts data at the end of a zeroed image of at least 16 KiB, so
// that fuzzed metadata offsets and sections can point into the image.
func padImage(data []byte) []byte {
	n := max(len(data), 16<<10)
	img := make([]byte, n)
	copy(img[n-len(data):], data)
	return img
}

// FuzzParseFirmware: ParseFirmware never panics, and what it accepts is
// consistent — page-aligned, non-overlapping sections of known types, image
// data inside the image, MR_EXTEND sections fully backed by data, one TD_HOB,
// at most MaxSections sections and MaxInitialMemory added —
// and MRTD can be computed for both variants, deterministically.
func FuzzParseFirmware(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		img := padImage(data)
		fw, err := ParseFirmware(img)
		if err != nil {
			return
		}
		if len(fw.Sections) > MaxSections {
			t.Fatalf("%d sections accepted", len(fw.Sections))
		}
		hobs, added := 0, uint64(0)
		for i, s := range fw.Sections {
			if s.Attributes&AttrPageAug == 0 {
				added += s.MemoryDataSize
			}
			if s.Type > SectionPermMem || s.MemoryAddress%pageSize != 0 || s.MemoryDataSize%pageSize != 0 || s.MemoryDataSize == 0 {
				t.Fatalf("section %d %+v", i, s)
			}
			if uint64(s.DataOffset)+uint64(s.RawDataSize) > uint64(len(img)) {
				t.Fatalf("section %d data outside the image", i)
			}
			if s.Attributes&AttrMRExtend != 0 && uint64(s.RawDataSize) != s.MemoryDataSize {
				t.Fatalf("section %d extends beyond its data", i)
			}
			for j, o := range fw.Sections[:i] {
				if s.MemoryAddress < o.MemoryAddress+o.MemoryDataSize && o.MemoryAddress < s.MemoryAddress+s.MemoryDataSize {
					t.Fatalf("sections %d and %d overlap", j, i)
				}
			}
			if s.Type == SectionTDHOB {
				hobs++
			}
		}
		if hobs != 1 || added > MaxInitialMemory {
			t.Fatalf("%d TD_HOB sections, %d bytes added at build time", hobs, added)
		}
		for _, v := range Variants() {
			d1, err := fw.MRTD(v)
			if err != nil {
				t.Fatal(err)
			}
			if d2, _ := fw.MRTD(v); d1 != d2 {
				t.Fatal("MRTD is not deterministic")
			}
		}
	})
}

func TestFuzzSeedCorpus(t *testing.T) {
	seeds := fuzzSeeds()
	if _, err := ParseFirmware(padImage(seeds[0])); err != nil {
		t.Fatalf("the first seed is not a valid image: %v", err)
	}
	testutil.CheckSeedCorpus(t, "FuzzParseFirmware", seeds)
}

func BenchmarkMRTDDebian(b *testing.B) {
	img := debianTDX(b)
	b.SetBytes(int64(len(img)))
	for b.Loop() {
		if _, err := MRTD(img, SinglePass); err != nil {
			b.Fatal(err)
		}
	}
}

// manySectionsTDVF is the default synthetic image with n PermMem sections
// added (PermMem memory is added after build time: no bound applies to it).
func manySectionsTDVF(size, n int) []byte {
	s := defaultSynthSpec()
	s.zeroFill = true
	s.size = size
	s.metaOff = size - 64<<10
	for i := range n {
		s.sections = append(s.sections, Section{0, 0, 1<<32 + uint64(i)*pageSize, pageSize, SectionPermMem, AttrPageAug})
	}
	return buildTDVF(s)
}

// TestManySections: a hostile image with a huge section count is refused at
// once. Each section was checked against every earlier one, so a 20 MiB
// image listing half a million PermMem sections kept ParseFirmware busy for
// minutes.
func TestManySections(t *testing.T) {
	img := manySectionsTDVF(20<<20, 1<<19)
	// Refused before any section is compared with another (the check took
	// minutes here; go test's own timeout catches a regression).
	_, err := ParseFirmware(img)
	if err == nil || !strings.Contains(err.Error(), "sections") {
		t.Fatalf("ParseFirmware: %v, want an error about the section count", err)
	}
	// The bound itself: MaxSections sections are accepted, one more is not
	// (the default image has five).
	if _, err := ParseFirmware(manySectionsTDVF(256<<10, MaxSections-5)); err != nil {
		t.Errorf("%d sections: %v", MaxSections, err)
	}
	if _, err := ParseFirmware(manySectionsTDVF(256<<10, MaxSections-4)); err == nil {
		t.Errorf("%d sections accepted", MaxSections+1)
	}
}
