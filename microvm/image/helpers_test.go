package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// -update rewrites the committed fixtures under testdata/ (fake kernel, fake
// init, fake module tree). The golden initrd hash then has to be updated by
// hand: it is the point of TestGoldenInitrd that it never changes silently.
var update = flag.Bool("update", false, "rewrite testdata fixtures")

// fixtureRelease is the kernel release of the fixture kernel and modules.
const fixtureRelease = "6.12.0-enarx-test"

var (
	fixtureModulesDir = filepath.Join("testdata", "lib", "modules", fixtureRelease)
	fixtureKernel     = filepath.Join("testdata", "vmlinuz-fixture")
	fixtureInit       = filepath.Join("testdata", "init-fixture")
)

// fakeModule returns an ET_REL x86-64 ELF file whose only contents are a
// .modinfo section with the given bytes and the section name table, laid out
// as a kernel module is.
func fakeModule(modinfo []byte) []byte {
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const hdr = 64
	modOff := uint64(hdr)
	strOff := modOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: hdr, Shentsize: 64, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, int(shOff)-b.Len()))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, s)
	}
	return b.Bytes()
}

// fakeExecutable returns an x86-64 ET_EXEC ELF file with one PT_LOAD segment
// holding code (and a PT_INTERP segment when interp is not empty). It is not
// meant to run; it has the shape CheckStaticELF looks at.
func fakeExecutable(code []byte, interp string) []byte {
	const hdr, phsz = 64, 56
	phnum := 1
	if interp != "" {
		phnum = 2
	}
	dataOff := uint64(hdr + phsz*phnum)
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: 0x400000 + dataOff, Phoff: hdr, Ehsize: hdr, Phentsize: phsz, Phnum: uint16(phnum),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	total := dataOff + uint64(len(code)) + uint64(len(interp)) + 1
	binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000,
		Filesz: total, Memsz: total, Align: 0x1000,
	})
	if interp != "" {
		off := dataOff + uint64(len(code))
		binary.Write(&b, binary.LittleEndian, elf.Prog64{
			Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: off, Vaddr: 0x400000 + off, Paddr: 0x400000 + off,
			Filesz: uint64(len(interp)) + 1, Memsz: uint64(len(interp)) + 1, Align: 1,
		})
	}
	b.Write(code)
	b.WriteString(interp)
	b.WriteByte(0)
	return b.Bytes()
}

// fakeBzImage returns the first bytes of an x86 boot image: a setup header
// (boot protocol 2.15, one setup sector) pointing at version.
func fakeBzImage(version string, tail []byte) []byte {
	b := make([]byte, 2*512)
	b[0x1f1] = 1
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(b[0x20e:], 0x300-0x200)
	copy(b[0x300:], version)
	return append(b, tail...)
}

func modinfoFor(name, depends, release string) []byte {
	return []byte("license=GPL\x00description=enarx test fixture\x00depends=" + depends +
		"\x00intree=Y\x00name=" + name + "\x00vermagic=" + release + " SMP preempt mod_unload modversions \x00\x00\x00")
}

// writeFixtures (re)creates the committed fixtures: a fake kernel and init,
// and a module tree in which tsm is xz-compressed and sev-guest
// zstd-compressed by the reference xz(1) and zstd(1) tools, with kbuild's
// options, so the decompressors are tested against what kbuild produces.
func writeFixtures(t *testing.T) {
	t.Helper()
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	write(fixtureKernel, fakeBzImage(fixtureRelease+" (enarx@fixture) #1 SMP PREEMPT_DYNAMIC", []byte("not a kernel\n")))
	write(fixtureInit, fakeExecutable([]byte("\x0f\x0b enarx test init"), ""))
	md := fixtureModulesDir
	write(filepath.Join(md, "kernel/fs/configfs/configfs.ko"), fakeModule(modinfoFor("configfs", "", fixtureRelease)))
	tsm := filepath.Join(md, "kernel/drivers/virt/coco/tsm.ko")
	write(tsm, fakeModule(modinfoFor("tsm", "configfs", fixtureRelease)))
	run("xz", "-f", "--check=crc32", "--lzma2=dict=1MiB", tsm)
	sev := filepath.Join(md, "kernel/drivers/virt/coco/sev-guest/sev-guest.ko")
	write(sev, fakeModule(modinfoFor("sev_guest", "tsm", fixtureRelease)))
	run("zstd", "-q", "-f", "--rm", "-T0", "--ultra", "-22", sev)
	tdx := filepath.Join(md, "kernel/drivers/virt/coco/tdx-guest/tdx-guest.ko")
	write(tdx, fakeModule(modinfoFor("tdx_guest", "tsm", fixtureRelease)))
	run("gzip", "-n", "-f", "-9", tdx)
	write(filepath.Join(md, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n"))
}

// TestFixtures checks the committed fixtures against the code that made
// them (rewriting them first under -update): the uncompressed files are
// byte-identical to what the helpers produce now, and each compressed module
// decompresses to exactly the ELF file it was made from.
func TestFixtures(t *testing.T) {
	if *update {
		writeFixtures(t)
	}
	same := func(p string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (regenerate with go test -run TestFixtures -update)", err)
		}
		if name := filepath.Base(p); name != "" {
			if _, ok := moduleBaseName(name); ok {
				if got, err = decompressModule(name, got); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s does not match its generator (regenerate with -update)", p)
		}
	}
	same(fixtureKernel, fakeBzImage(fixtureRelease+" (enarx@fixture) #1 SMP PREEMPT_DYNAMIC", []byte("not a kernel\n")))
	same(fixtureInit, fakeExecutable([]byte("\x0f\x0b enarx test init"), ""))
	md := fixtureModulesDir
	same(filepath.Join(md, "kernel/fs/configfs/configfs.ko"), fakeModule(modinfoFor("configfs", "", fixtureRelease)))
	same(filepath.Join(md, "kernel/drivers/virt/coco/tsm.ko.xz"), fakeModule(modinfoFor("tsm", "configfs", fixtureRelease)))
	same(filepath.Join(md, "kernel/drivers/virt/coco/sev-guest/sev-guest.ko.zst"), fakeModule(modinfoFor("sev_guest", "tsm", fixtureRelease)))
	same(filepath.Join(md, "kernel/drivers/virt/coco/tdx-guest/tdx-guest.ko.gz"), fakeModule(modinfoFor("tdx_guest", "tsm", fixtureRelease)))
}
