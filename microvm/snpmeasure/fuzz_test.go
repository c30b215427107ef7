package snpmeasure

import (
	"bytes"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// fuzzSeeds are small OVMF-shaped images: valid ones and near misses.
func fuzzSeeds() [][]byte {
	small := defaultSynthSpec()
	small.size, small.metaOff, small.zeroFill = 16<<10, 0x200, true
	noHashes := small
	noHashes.sections = small.sections[:4]
	badOverlap := small
	badOverlap.sections = append(append([]Section(nil), small.sections...), Section{0x800000, 0x1000, SectionCPUID})
	highGPA := small
	highGPA.sections = []Section{{0xfffff000, 0x1000, SectionSNPSecrets}}
	zeroSize := small
	zeroSize.sections = []Section{{0, 0, SectionSVSMCAA}, {0x1000, 0x1000, SectionCPUID}}
	// One section more than MaxSections, each of them valid.
	many := small
	many.metaOff = 0x1000
	many.sections = make([]Section, MaxSections+1)
	for i := range many.sections {
		many.sections[i].Type = SectionSNPSecMemory
	}
	var out [][]byte
	for _, s := range []synthSpec{small, noHashes, badOverlap, highGPA, zeroSize} {
		// The leading zeros are left to padImage: short seeds, same images.
		out = append(out, bytes.TrimLeft(buildOVMF(s), "\x00"))
	}
	return append(out, []byte{}, make([]byte, 64), bytes.TrimLeft(buildOVMF(many), "\x00"))
}

// padImage places data at the end of a zeroed image whose size is the next
// multiple of the page size, so the fuzzer's inputs keep the footer at the
// end whatever their length.
func padImage(data []byte) []byte {
	n := (len(data) + pageSize - 1) / pageSize * pageSize
	img := make([]byte, n)
	copy(img[n-len(data):], data)
	return img
}

// FuzzParseFirmware: ParseFirmware never panics, and whatever it accepts is
// consistent — the image starts at 4 GiB minus its size; every section has a
// known type, is page-aligned, below the image and apart from the others;
// the secrets/CPUID/kernel-hashes sections are one page; at most
// MaxSections sections and MaxSectionMemory in all; the AP reset
// address is set — and can be measured: without a kernel always, with one
// exactly when SupportsKernelHashes says so, with the same digest each time.
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
		if fw.GPA != fourGiB-uint64(len(img)) || fw.APResetAddr == 0 {
			t.Fatalf("GPA %#x for %d bytes, AP reset %#x", fw.GPA, len(img), fw.APResetAddr)
		}
		if len(fw.Sections) > MaxSections {
			t.Fatalf("%d sections accepted", len(fw.Sections))
		}
		var total uint64
		for i, s := range fw.Sections {
			if total += uint64(s.Size); total > MaxSectionMemory {
				t.Fatalf("sections describe %d bytes", total)
			}
			switch s.Type {
			case SectionSNPSecMemory, SectionSVSMCAA:
			case SectionSNPSecrets, SectionCPUID, SectionKernelHashes:
				if s.Size != pageSize {
					t.Fatalf("section %d %+v is not one page", i, s)
				}
			default:
				t.Fatalf("section %d has unknown type %v", i, s.Type)
			}
			if s.Size == 0 {
				continue
			}
			if s.GPA%pageSize != 0 || s.Size%pageSize != 0 || uint64(s.GPA)+uint64(s.Size) > fw.GPA {
				t.Fatalf("section %d %+v is misaligned or overlaps the image at %#x", i, s, fw.GPA)
			}
			for j, o := range fw.Sections[:i] {
				if o.Size != 0 && s.GPA < o.GPA+o.Size && o.GPA < s.GPA+s.Size {
					t.Fatalf("sections %d %+v and %d %+v overlap", j, o, i, s)
				}
			}
		}
		o := Options{VCPUs: 2, VCPUType: "EPYC-v4", GuestFeatures: 1}
		d1, err := fw.Measure(o)
		if err != nil {
			t.Fatalf("accepted firmware cannot be measured without a kernel: %v", err)
		}
		if d2, _ := fw.Measure(o); d2 != d1 {
			t.Fatal("two measurements of the same inputs differ")
		}
		o.Kernel, o.Cmdline = []byte("k"), "c"
		_, err = fw.Measure(o)
		if (err == nil) != (fw.SupportsKernelHashes() == nil) {
			t.Fatalf("measuring with a kernel: %v; SupportsKernelHashes: %v", err, fw.SupportsKernelHashes())
		}
	})
}

// The seed corpus in testdata/fuzz/FuzzParseFirmware holds fuzzSeeds
// (regenerate with UPDATE_FUZZ_SEEDS=1).
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := fuzzSeeds()
	fw, err := ParseFirmware(padImage(seeds[0]))
	if err != nil {
		t.Fatalf("the first seed is not a valid image: %v", err)
	}
	if err := fw.SupportsKernelHashes(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckSeedCorpus(t, "FuzzParseFirmware", seeds)
}
