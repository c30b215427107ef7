package snpmeasure

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// virteeFixture reads one of the 4 KiB OVMF suffixes that virtee's
// sev-snp-measure tests with (testdata/virtee/README.md), pinned by SHA-256.
func virteeFixture(t *testing.T, name, sha string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/virtee/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sha {
		t.Fatalf("%s: SHA-256 %x, want %s", name, h, sha)
	}
	return b
}

// TestUpstreamVectors: the SNP launch digests that sev-snp-measure's own
// test suite (tests/test_guest.py at commit 8f2b337, QEMU VMM) expects —
// values its authors published, not ones produced for this repository.
// "/dev/null" kernel and initrd there are empty files here.
func TestUpstreamVectors(t *testing.T) {
	amd := virteeFixture(t, "ovmf_AmdSev_suffix.bin", "8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c")
	x64 := virteeFixture(t, "ovmf_OvmfX64_suffix.bin", "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da")
	empty := []byte{}
	for _, c := range []struct {
		name   string
		o      Options
		digest string
	}{
		{"test_snp_default", Options{OVMF: amd, Kernel: empty, Initrd: empty, Cmdline: "console=ttyS0 loglevel=7", VCPUs: 1, GuestFeatures: 0x21},
			"803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"},
		{"test_snp_guest_feature_snp_only", Options{OVMF: amd, Kernel: empty, Initrd: empty, Cmdline: "console=ttyS0 loglevel=7", VCPUs: 1, GuestFeatures: 0x1},
			"6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"},
		{"test_snp_without_kernel_default", Options{OVMF: amd, VCPUs: 1, GuestFeatures: 0x21},
			"e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"},
		{"test_snp_without_kernel_feature_snp_only", Options{OVMF: amd, VCPUs: 1, GuestFeatures: 0x1},
			"19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"},
		{"test_snp_with_multiple_vcpus_default", Options{OVMF: amd, Kernel: empty, Initrd: empty, VCPUs: 4, GuestFeatures: 0x21},
			"4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"},
		{"test_snp_with_multiple_vcpus_feature_snp_only", Options{OVMF: amd, Kernel: empty, Initrd: empty, VCPUs: 4, GuestFeatures: 0x1},
			"5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"},
		{"test_snp_with_ovmfx64_without_default", Options{OVMF: x64, VCPUs: 1, GuestFeatures: 0x21},
			"28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"},
		{"test_snp_with_ovmfx64_without_kernel_feature_snp_only", Options{OVMF: x64, VCPUs: 1, GuestFeatures: 0x1},
			"da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.VCPUType = "EPYC-v4"
			d, err := Measure(c.o)
			if err != nil {
				t.Fatal(err)
			}
			if d.String() != c.digest {
				t.Errorf("digest %s, sev-snp-measure's test expects %s", d, c.digest)
			}
		})
	}

	// test_snp_ovmf_hash_full_default: the digest after the firmware pages.
	fw, err := ParseFirmware(amd)
	if err != nil {
		t.Fatal(err)
	}
	var ld launchDigest
	ld.addData(fw.GPA, fw.Image)
	if got, want := hex.EncodeToString(ld.cur[:]), "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"; got != want {
		t.Errorf("OVMF-only digest %s, sev-snp-measure's test expects %s", got, want)
	}

	// test_snp_with_ovmfx64_and_kernel_should_fail: a plain OvmfX64 build
	// has no SNP_KERNEL_HASHES section.
	_, err = Measure(Options{OVMF: x64, Kernel: empty, Initrd: empty, VCPUs: 1, VCPUType: "EPYC-v4", GuestFeatures: 0x21})
	if err == nil || !strings.Contains(err.Error(), "SNP_KERNEL_HASHES") {
		t.Errorf("OvmfX64 with a kernel: %v, want an error naming SNP_KERNEL_HASHES", err)
	}
}
