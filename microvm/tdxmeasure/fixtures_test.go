package tdxmeasure

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

// Pinned contents of the committed firmware images (testdata/README.md).
const (
	debianTDXSHA256    = "a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312"
	debianAmdSevSHA256 = "3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f"
)

func loadGz(t testing.TB, path, sha string) []byte {
	t.Helper()
	return testutil.ReadGzipPinned(t, path, sha)
}

func debianTDX(t testing.TB) []byte {
	return loadGz(t, "testdata/OVMF.inteltdx.ms.fd.gz", debianTDXSHA256)
}

// The AmdSev build carries TDX metadata too; snpmeasure commits it.
func debianAmdSev(t testing.TB) []byte {
	return loadGz(t, "../snpmeasure/testdata/OVMF.amdsev.fd.gz", debianAmdSevSHA256)
}

func genBytes(label string, n int) []byte { return testutil.DeterministicBytes(label, n) }

// synthSpec describes a TDVF-shaped image: filler, a footer GUID table with
// the TDX metadata entry, and a "TDVF" block metaOff bytes from the end.
type synthSpec struct {
	seed     string
	size     int
	metaOff  int
	sections []Section
	zeroFill bool
}

func defaultSynthSpec() synthSpec {
	const size = 128 << 10
	return synthSpec{
		seed:    "enarx synthetic TDVF v1",
		size:    size,
		metaOff: 0x400,
		sections: []Section{
			{0x8000, size - 0x8000, 1<<32 - size + 0x8000, size - 0x8000, SectionBFV, AttrMRExtend},
			{0, 0x8000, 1<<32 - size, 0x8000, SectionCFV, 0},
			{0, 0, 0x800000, 0x2000, SectionTempMem, 0},
			{0, 0, 0x809000, 0x2000, SectionTDHOB, 0},
			{0, 0, 0x900000, 0x10000, SectionPermMem, AttrPageAug},
		},
	}
}

func buildTDVF(s synthSpec) []byte {
	img := make([]byte, s.size)
	if !s.zeroFill {
		img = genBytes(s.seed, s.size)
	}
	le := binary.LittleEndian
	m := len(img) - s.metaOff
	copy(img[m:], "TDVF")
	le.PutUint32(img[m+4:], uint32(tdvfHeader+tdvfSection*len(s.sections)))
	le.PutUint32(img[m+8:], 1)
	le.PutUint32(img[m+12:], uint32(len(s.sections)))
	for i, sec := range s.sections {
		b := img[m+tdvfHeader+i*tdvfSection:]
		le.PutUint32(b, sec.DataOffset)
		le.PutUint32(b[4:], sec.RawDataSize)
		le.PutUint64(b[8:], sec.MemoryAddress)
		le.PutUint64(b[16:], sec.MemoryDataSize)
		le.PutUint32(b[24:], uint32(sec.Type))
		le.PutUint32(b[28:], sec.Attributes)
	}
	end := len(img) - ovmf.TrailerSize
	entry := end - 18 - 22 // one 4-byte entry before the footer entry
	le.PutUint32(img[entry:], uint32(s.metaOff))
	le.PutUint16(img[entry+4:], 22)
	copy(img[entry+6:], ovmf.TDXMetadataGUID[:])
	le.PutUint16(img[end-18:], 22+18)
	copy(img[end-16:], ovmf.FooterGUID[:])
	return img
}

func syntheticTDVF() []byte { return buildTDVF(defaultSynthSpec()) }

// TestWriteFixtures writes the synthetic image for the reference
// calculator; it runs only with TDXMEASURE_FIXTURES_DIR set.
func TestWriteFixtures(t *testing.T) {
	dir := os.Getenv("TDXMEASURE_FIXTURES_DIR")
	if dir == "" {
		t.Skip("TDXMEASURE_FIXTURES_DIR is not set")
	}
	p := dir + "/synthetic-tdvf.fd"
	if err := os.WriteFile(p, syntheticTDVF(), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println(p)
}
