package snpmeasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

// The launch digests must equal what virtee's sev-snp-measure printed for
// the same inputs (testdata/vectors.json).
func TestVectors(t *testing.T) {
	vf := loadVectors(t)
	sources := map[string]bool{}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var o Options
			var err error
			if o.OVMF, err = v.OVMF.load(t); err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				in  *input
				dst *[]byte
			}{{v.Kernel, &o.Kernel}, {v.Initrd, &o.Initrd}} {
				if p.in == nil {
					continue
				}
				if *p.dst, err = p.in.load(t); err != nil {
					// A file: input is one particular host build (the Debian
					// kernel the vector was made with), not a host feature: a
					// host without that exact file skips this vector; the
					// gen: vectors cover the same code.
					var skip errSkip
					if errors.As(err, &skip) {
						t.Skip(err)
					}
					t.Fatal(err)
				}
			}
			o.Cmdline, o.VCPUs, o.VCPUType = v.Cmdline, v.VCPUs, v.VCPUType
			if o.GuestFeatures, err = strconv.ParseUint(v.GuestFeatures, 0, 64); err != nil {
				t.Fatal(err)
			}
			d, err := Measure(o)
			if err != nil {
				t.Fatal(err)
			}
			if d.String() != v.Measurement {
				t.Errorf("digest %s, sev-snp-measure printed %s", d, v.Measurement)
			}
			sources[v.OVMF.Source] = true
		})
	}
	for _, s := range []string{"debian-ovmf-amdsev", "synthetic"} {
		if !sources[s] {
			t.Errorf("no vector passed for firmware %s", s)
		}
	}
}

// The hash table QEMU writes: GUID, length 168, then cmdline, initrd and
// kernel entries of 50 bytes, zero-padded to 176 (target/i386/sev.c).
func TestHashTableLayout(t *testing.T) {
	h, err := HashInputs([]byte("kernel"), nil, "console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	b := h.HashTable()
	if len(b) != 176 {
		t.Fatalf("table is %d bytes, want 176", len(b))
	}
	want := func(off int, g string) {
		t.Helper()
		if got := ovmf.GUID(b[off : off+16]); got != ovmf.MustParseGUID(g) {
			t.Errorf("GUID at %d is %s, want %s", off, got, g)
		}
	}
	want(0, "9438d606-4f22-4cc9-b479-a793d411fd21")
	if n := binary.LittleEndian.Uint16(b[16:]); n != 168 {
		t.Errorf("table length %d, want 168", n)
	}
	for i, e := range []struct {
		guid string
		hash [32]byte
	}{
		{"97d02dd8-bd20-4c94-aa78-e7714d36ab2a", sha256.Sum256([]byte("console=ttyS0\x00"))},
		{"44baf731-3a2f-4bd7-9af1-41e29169781d", sha256.Sum256(nil)},
		{"4de79437-abd2-427f-b835-d5b172d2045b", sha256.Sum256([]byte("kernel"))},
	} {
		off := 18 + 50*i
		want(off, e.guid)
		if n := binary.LittleEndian.Uint16(b[off+16:]); n != 50 {
			t.Errorf("entry %d length %d, want 50", i, n)
		}
		if !bytes.Equal(b[off+18:off+50], e.hash[:]) {
			t.Errorf("entry %d hash %x, want %x", i, b[off+18:off+50], e.hash)
		}
	}
	if !bytes.Equal(b[168:], make([]byte, 8)) {
		t.Errorf("padding %x is not zero", b[168:])
	}
	// Without -append QEMU hashes the lone NUL.
	h2, _ := HashInputs([]byte("kernel"), nil, "")
	if h2.Cmdline != sha256.Sum256([]byte{0}) {
		t.Error("an empty command line is not hashed as a single NUL")
	}
}

// AMD CPUID signatures of QEMU's EPYC models (family/model/stepping from
// QEMU's builtin_x86_defs, encoding from AMD #25481).
func TestVCPUSignatures(t *testing.T) {
	for name, want := range map[string]uint32{
		"EPYC": 0x00800f12, "EPYC-v4": 0x00800f12, "EPYC-Rome": 0x00830f10,
		"EPYC-Milan": 0x00a00f11, "EPYC-Genoa": 0x00a10f10, "EPYC-Turin": 0x00b00f00,
	} {
		got, err := VCPUSignature(name)
		if err != nil || got != want {
			t.Errorf("%s: %#x, %v; want %#x", name, got, err, want)
		}
	}
}

func baseOptions(t testing.TB) Options {
	kernel := genBytes("prop-kernel", 64<<10)
	initrd := genBytes("prop-initrd", 32<<10)
	return Options{OVMF: syntheticOVMF(), Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0",
		VCPUs: 2, VCPUType: "EPYC-v4", GuestFeatures: 1}
}

// Every pinned input changes the digest: one byte of the firmware, kernel,
// initrd or command line, the vCPU count or type, or the guest features.
func TestEveryInputChangesTheDigest(t *testing.T) {
	base := baseOptions(t)
	ref, err := Measure(base)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	fw, err := ParseFirmware(base.OVMF)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(o *Options){
		"ovmf first byte":        func(o *Options) { o.OVMF = flip(o.OVMF, 0) },
		"ovmf middle byte":       func(o *Options) { o.OVMF = flip(o.OVMF, len(o.OVMF)/2) },
		"ovmf AP reset address":  func(o *Options) { o.OVMF = withResetAddr(t, o.OVMF, fw.APResetAddr+0x10) },
		"kernel first byte":      func(o *Options) { o.Kernel = flip(o.Kernel, 0) },
		"kernel last byte":       func(o *Options) { o.Kernel = flip(o.Kernel, len(o.Kernel)-1) },
		"initrd byte":            func(o *Options) { o.Initrd = flip(o.Initrd, 1234) },
		"no initrd":              func(o *Options) { o.Initrd = nil },
		"cmdline byte":           func(o *Options) { o.Cmdline = "console=ttyS1" },
		"cmdline trailing space": func(o *Options) { o.Cmdline += " " },
		"no cmdline":             func(o *Options) { o.Cmdline = "" },
		"no kernel":              func(o *Options) { o.Kernel, o.Initrd, o.Cmdline = nil, nil, "" },
		"1 vCPU":                 func(o *Options) { o.VCPUs = 1 },
		"3 vCPUs":                func(o *Options) { o.VCPUs = 3 },
		"EPYC-Milan":             func(o *Options) { o.VCPUType = "EPYC-Milan" },
		"EPYC-Genoa":             func(o *Options) { o.VCPUType = "EPYC-Genoa" },
		"guest features 0x21":    func(o *Options) { o.GuestFeatures = 0x21 },
	}
	for name, mut := range cases {
		o := base
		mut(&o)
		d, err := Measure(o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d == ref {
			t.Errorf("%s: digest unchanged (%s)", name, d)
		}
	}
	// Same inputs, same digest; aliases of one CPU model measure alike.
	o := base
	o.VCPUType = "EPYC"
	if d, _ := Measure(o); d != ref {
		t.Errorf("EPYC and EPYC-v4 (same signature) differ: %s vs %s", d, ref)
	}
}

// withResetAddr rewrites the SEV-ES reset block of a synthetic image.
func withResetAddr(t testing.TB, img []byte, addr uint32) []byte {
	t.Helper()
	s := defaultSynthSpec()
	if !bytes.Equal(img, buildOVMF(s)) {
		t.Fatal("withResetAddr works on the default synthetic image only")
	}
	s.resetAddr = addr
	return buildOVMF(s)
}

func TestErrors(t *testing.T) {
	good := baseOptions(t)
	plainOVMF := genBytes("not an OVMF", 64<<10)
	noHashes := defaultSynthSpec()
	noHashes.sections = noHashes.sections[:4]
	noReset := defaultSynthSpec()
	noReset.resetAddr = 0
	overlap := defaultSynthSpec()
	overlap.sections = append(overlap.sections, Section{0x801000, 0x1000, SectionSNPSecMemory})
	unknownType := defaultSynthSpec()
	unknownType.sections[0].Type = 7
	tdxOnly := loadTDXFirmwareTDVFOnly(t)
	for name, c := range map[string]struct {
		mut  func(o *Options)
		want string
	}{
		"unknown vCPU type": {func(o *Options) { o.VCPUType = "EPYC-Foo" }, `unknown vCPU type "EPYC-Foo": known types are EPYC, EPYC-Genoa,`},
		"zero vCPUs":        {func(o *Options) { o.VCPUs = 0 }, "vCPU count 0"},
		"no SNPActive":      {func(o *Options) { o.GuestFeatures = 0x20 }, "bit 0 (SNPActive)"},
		"initrd no kernel":  {func(o *Options) { o.Kernel = nil }, "needs a kernel"},
		"cmdline NUL":       {func(o *Options) { o.Cmdline = "a\x00b" }, "NUL"},
		"not OVMF":          {func(o *Options) { o.OVMF = plainOVMF }, "not an AmdSev OVMF build"},
		"odd size":          {func(o *Options) { o.OVMF = o.OVMF[:len(o.OVMF)-1] }, "multiple of 4096"},
		"no hashes section": {func(o *Options) { o.OVMF = buildOVMF(noHashes) }, "no SNP_KERNEL_HASHES"},
		"no reset block":    {func(o *Options) { o.OVMF = buildOVMF(noReset) }, "SEV-ES reset block"},
		"overlap":           {func(o *Options) { o.OVMF = buildOVMF(overlap) }, "overlap"},
		"unknown section":   {func(o *Options) { o.OVMF = buildOVMF(unknownType) }, "unknown type"},
		"no SEV metadata":   {func(o *Options) { o.OVMF = tdxOnly }, "not an AmdSev OVMF build: the firmware has no SEV metadata"},
	} {
		o := good
		c.mut(&o)
		_, err := Measure(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

// loadTDXFirmwareTDVFOnly is the Debian image with its SEV metadata entry's
// GUID renamed, which is what a TDX-only (TDVF) build looks like to us.
func loadTDXFirmwareTDVFOnly(t testing.TB) []byte {
	img := bytes.Clone(loadDebianOVMF(t))
	g := ovmf.SEVMetadataGUID
	i := bytes.LastIndex(img, g[:])
	if i < 0 {
		t.Fatal("no SEV metadata GUID in the Debian image")
	}
	img[i] ^= 0xff
	return img
}

// The Debian AmdSev image: what ParseFirmware reads from it.
func TestParseDebianFirmware(t *testing.T) {
	fw, err := ParseFirmware(loadDebianOVMF(t))
	if err != nil {
		t.Fatal(err)
	}
	if fw.GPA != 0xffc00000 || fw.APResetAddr != 0x80b004 || fw.HashTableGPA != 0x810c00 || fw.HashTableSize != 0x400 {
		t.Errorf("GPA %#x, AP reset %#x, hash table %#x+%#x", fw.GPA, fw.APResetAddr, fw.HashTableGPA, fw.HashTableSize)
	}
	want := []Section{
		{0x800000, 0x9000, SectionSNPSecMemory}, {0x80a000, 0x3000, SectionSNPSecMemory},
		{0x80d000, 0x1000, SectionSNPSecrets}, {0x80e000, 0x1000, SectionCPUID},
		{0x80f000, 0x1000, SectionSVSMCAA}, {0x811000, 0x1f000, SectionSNPSecMemory},
		{0x810000, 0x1000, SectionKernelHashes},
	}
	if len(fw.Sections) != len(want) {
		t.Fatalf("sections %v, want %v", fw.Sections, want)
	}
	for i := range want {
		if fw.Sections[i] != want[i] {
			t.Errorf("section %d: %+v, want %+v", i, fw.Sections[i], want[i])
		}
	}
	if err := fw.SupportsKernelHashes(); err != nil {
		t.Error(err)
	}
}

func BenchmarkMeasureDebianOVMF(b *testing.B) {
	o := Options{OVMF: loadDebianOVMF(b), VCPUs: 4, VCPUType: "EPYC-v4", GuestFeatures: 1}
	if k, err := os.ReadFile("/boot/vmlinuz-6.12.118+deb12-cloud-amd64"); err == nil {
		o.Kernel = k
		b.Logf("with the 6.12 cloud kernel (%d bytes)", len(k))
	}
	b.SetBytes(int64(len(o.OVMF) + len(o.Kernel)))
	for b.Loop() {
		if _, err := Measure(o); err != nil {
			b.Fatal(err)
		}
	}
}

// manySectionsOVMF is an image whose SEV metadata lists n1 zero-size
// sections (they describe no memory) followed by n2 one-page sections.
func manySectionsOVMF(size, n1, n2 int) []byte {
	s := defaultSynthSpec()
	s.zeroFill = true
	s.size = size
	s.metaOff = size - 64<<10
	s.sections = make([]Section, 0, n1+n2)
	for range n1 {
		s.sections = append(s.sections, Section{0, 0, SectionSNPSecMemory})
	}
	for i := range n2 {
		s.sections = append(s.sections, Section{uint32(0x10000000 + i*pageSize), pageSize, SectionSNPSecMemory})
	}
	return buildOVMF(s)
}

// TestManySections: a hostile image with a huge section count is refused at
// once. Each section was checked against every earlier one, so a 16 MiB
// image listing a million empty sections and 64Ki one-page ones (256 MiB,
// within MaxSectionMemory) kept ParseFirmware busy for minutes.
func TestManySections(t *testing.T) {
	img := manySectionsOVMF(16<<20, 1<<20, 1<<16)
	// Refused before any section is compared with another (the check took
	// minutes here; go test's own timeout catches a regression).
	_, err := ParseFirmware(img)
	if err == nil || !strings.Contains(err.Error(), "sections") {
		t.Fatalf("ParseFirmware: %v, want an error about the section count", err)
	}
	// The bound itself: MaxSections sections are accepted, one more is not.
	if _, err := ParseFirmware(manySectionsOVMF(256<<10, MaxSections-1, 1)); err != nil {
		t.Errorf("%d sections: %v", MaxSections, err)
	}
	if _, err := ParseFirmware(manySectionsOVMF(256<<10, MaxSections, 1)); err == nil {
		t.Errorf("%d sections accepted", MaxSections+1)
	}
}
