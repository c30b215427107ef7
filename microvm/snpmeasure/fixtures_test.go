package snpmeasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

// debianOVMFSHA256 pins testdata/OVMF.amdsev.fd.gz's content (README.md).
const debianOVMFSHA256 = "3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f"

// genBytes is testutil.DeterministicBytes; vectors name its inputs "gen:LABEL".
func genBytes(label string, n int) []byte { return testutil.DeterministicBytes(label, n) }

// synthSpec describes an OVMF-shaped image: deterministic filler bytes with a
// footer GUID table (SEV-ES reset block, SEV hash table area, SEV metadata)
// and an "ASEV" metadata block.
type synthSpec struct {
	seed      string
	size      int
	metaOff   int // metadata offset from the image end
	sections  []Section
	resetAddr uint32
	hashGPA   uint32
	hashSize  uint32
	zeroFill  bool // zeros instead of generated filler (small fuzz seeds)
}

func defaultSynthSpec() synthSpec {
	return synthSpec{
		seed:    "enarx synthetic OVMF v1",
		size:    256 << 10,
		metaOff: 0x800,
		sections: []Section{
			{0x800000, 0x6000, SectionSNPSecMemory},
			{0x806000, 0x1000, SectionSNPSecrets},
			{0x807000, 0x1000, SectionCPUID},
			{0x808000, 0x1000, SectionSVSMCAA},
			{0x809000, 0x1000, SectionKernelHashes},
			{0x80a000, 0x16000, SectionSNPSecMemory},
		},
		resetAddr: 0xfffc1234,
		hashGPA:   0x809400,
		hashSize:  0x200,
	}
}

func buildOVMF(s synthSpec) []byte {
	img := make([]byte, s.size)
	if !s.zeroFill {
		img = genBytes(s.seed, s.size)
	}
	le := binary.LittleEndian
	// Metadata block.
	m := len(img) - s.metaOff
	copy(img[m:], "ASEV")
	le.PutUint32(img[m+4:], uint32(sevMetadataHeader+sevSectionSize*len(s.sections)))
	le.PutUint32(img[m+8:], 1)
	le.PutUint32(img[m+12:], uint32(len(s.sections)))
	for i, sec := range s.sections {
		b := img[m+sevMetadataHeader+i*sevSectionSize:]
		le.PutUint32(b, sec.GPA)
		le.PutUint32(b[4:], sec.Size)
		le.PutUint32(b[8:], uint32(sec.Type))
	}
	// Footer table, built from the end backwards.
	end := len(img) - ovmf.TrailerSize
	pos := end - 18
	type ent struct {
		g    ovmf.GUID
		data []byte
	}
	var reset, hashes, meta [8]byte
	le.PutUint32(reset[:], s.resetAddr)
	le.PutUint32(hashes[:], s.hashGPA)
	le.PutUint32(hashes[4:], s.hashSize)
	le.PutUint32(meta[:], uint32(s.metaOff))
	for _, e := range []ent{ // nearest the footer first
		{ovmf.SEVMetadataGUID, meta[:4]},
		{ovmf.SEVHashTableGUID, hashes[:]},
		{ovmf.SEVESResetBlockGUID, reset[:4]},
	} {
		n := len(e.data) + 18
		copy(img[pos-n:], e.data)
		le.PutUint16(img[pos-18:], uint16(n))
		copy(img[pos-16:], e.g[:])
		pos -= n
	}
	le.PutUint16(img[end-18:], uint16(end-pos))
	copy(img[end-16:], ovmf.FooterGUID[:])
	return img
}

func syntheticOVMF() []byte { return buildOVMF(defaultSynthSpec()) }

func loadDebianOVMF(t testing.TB) []byte {
	t.Helper()
	return testutil.ReadGzipPinned(t, "testdata/OVMF.amdsev.fd.gz", debianOVMFSHA256)
}

// input is one measured input of a vector, named by where it comes from.
type input struct {
	Source string `json:"source"` // debian-ovmf-amdsev | synthetic | gen:LABEL | file:PATH
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

type vector struct {
	Name          string `json:"name"`
	OVMF          input  `json:"ovmf"`
	Kernel        *input `json:"kernel,omitempty"`
	Initrd        *input `json:"initrd,omitempty"`
	Cmdline       string `json:"cmdline,omitempty"`
	VCPUs         int    `json:"vcpus"`
	VCPUType      string `json:"vcpu_type"`
	GuestFeatures string `json:"guest_features"`
	Measurement   string `json:"measurement"`
}

type vectorFile struct {
	Tool    string   `json:"tool"`
	Vectors []vector `json:"vectors"`
}

// errSkip marks an input that this host does not have in the pinned version.
type errSkip struct{ msg string }

func (e errSkip) Error() string { return e.msg }

func (in input) load(t testing.TB) ([]byte, error) {
	var b []byte
	switch {
	case in.Source == "debian-ovmf-amdsev":
		b = loadDebianOVMF(t)
	case in.Source == "synthetic":
		b = syntheticOVMF()
	case strings.HasPrefix(in.Source, "gen:"):
		b = genBytes(strings.TrimPrefix(in.Source, "gen:"), in.Size)
	case strings.HasPrefix(in.Source, "file:"):
		p := strings.TrimPrefix(in.Source, "file:")
		var err error
		if b, err = os.ReadFile(p); err != nil {
			return nil, errSkip{fmt.Sprintf("%s: %v", p, err)}
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != in.SHA256 {
			return nil, errSkip{fmt.Sprintf("%s is another build (SHA-256 %x, the vector has %s)", p, h, in.SHA256)}
		}
	default:
		return nil, fmt.Errorf("unknown input source %q", in.Source)
	}
	if h := sha256.Sum256(b); len(b) != in.Size || hex.EncodeToString(h[:]) != in.SHA256 {
		return nil, fmt.Errorf("input %s: %d bytes, SHA-256 %x; the vector says %d bytes, %s", in.Source, len(b), h, in.Size, in.SHA256)
	}
	return b, nil
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vf); err != nil {
		t.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(vf.Vectors) == 0 {
		t.Fatal("testdata/vectors.json has no vectors")
	}
	return vf
}

// TestWriteFixtures writes the generated inputs of vector specs for running
// the reference tool (see testdata/README.md); it does nothing unless
// SNPMEASURE_FIXTURES_DIR is set.
func TestWriteFixtures(t *testing.T) {
	dir := os.Getenv("SNPMEASURE_FIXTURES_DIR")
	if dir == "" {
		t.Skip("SNPMEASURE_FIXTURES_DIR is not set")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"synthetic-ovmf.fd":  syntheticOVMF(),
		"debian-ovmf-amdsev": loadDebianOVMF(t),
	}
	for _, g := range fixtureGens {
		files["gen:"+g.label] = genBytes(g.label, g.size)
	}
	for name, b := range files {
		p := filepath.Join(dir, strings.ReplaceAll(name, ":", "_"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		t.Logf("%s: %d bytes, sha256 %x", p, len(b), h)
	}
}

// fixtureGens are the generated inputs the vectors use.
var fixtureGens = []struct {
	label string
	size  int
}{
	{"kernel-A", 1 << 20},
	{"kernel-B", 3<<20 + 123},
	{"initrd-A", 2<<20 + 7},
	{"initrd-B", 4096},
}
