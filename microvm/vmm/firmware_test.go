package vmm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

func descriptor(file string, device string, features ...string) *fstest.MapFile {
	d := map[string]any{
		"description":     "test firmware",
		"interface-types": []string{"uefi"},
		"mapping":         map[string]string{"device": device, "filename": file},
		"targets":         []map[string]any{{"architecture": "x86_64", "machines": []string{"pc-q35-*"}}},
		"features":        features,
		"tags":            []string{},
	}
	b, _ := json.Marshal(d)
	return &fstest.MapFile{Data: b}
}

// image builds a firmware image whose OVMF footer table has entries with
// the given GUIDs (see package ovmf for the layout).
func image(guids ...ovmf.GUID) []byte {
	var table []byte
	for _, g := range guids {
		table = append(table, 1, 2, 3, 4) // data
		table = binary.LittleEndian.AppendUint16(table, 4+18)
		table = append(table, g[:]...)
	}
	table = binary.LittleEndian.AppendUint16(table, uint16(len(table)+18))
	table = append(table, ovmf.FooterGUID[:]...)
	img := append(bytes.Repeat([]byte{0xcc}, 4096), table...)
	return append(img, make([]byte, ovmf.TrailerSize)...)
}

var (
	amdsev = image(ovmf.SEVESResetBlockGUID, ovmf.SEVHashTableGUID, ovmf.SEVSecretGUID, ovmf.SEVMetadataGUID)
	tdvf   = image(ovmf.TDXMetadataGUID)
	// fw is an image that is both (the file names in a test say which
	// kind it stands for).
	fw = &fstest.MapFile{Data: image(ovmf.SEVHashTableGUID, ovmf.SEVMetadataGUID, ovmf.TDXMetadataGUID)}
)

func env(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestFindFirmware(t *testing.T) {
	snpDesc := descriptor("/opt/fw/amdsev.fd", "memory", "amd-sev", "amd-sev-es", "amd-sev-snp", "verbose-dynamic")
	cases := []struct {
		name   string
		files  fstest.MapFS
		getenv func(string) string
		tee    TEE
		want   string // path, or "error: …"
	}{
		{"Env", fstest.MapFS{"srv/fw.fd": fw, "usr/share/ovmf/OVMF.amdsev.fd": fw}, env(EnvSNPFirmware, "/srv/fw.fd"), TEESNP, "/srv/fw.fd"},
		{"EnvRelative", fstest.MapFS{"usr/share/ovmf/OVMF.amdsev.fd": fw}, env(EnvSNPFirmware, "fw.fd"), TEESNP, `error: ENARX_SNP_FIRMWARE="fw.fd": give an absolute path`},
		{"EnvMissing", fstest.MapFS{"usr/share/ovmf/OVMF.amdsev.fd": fw}, env(EnvSNPFirmware, "/srv/fw.fd"), TEESNP, "error: ENARX_SNP_FIRMWARE: /srv/fw.fd: open"},
		{"EnvDirectory", fstest.MapFS{"srv/fw/x": fw}, env(EnvTDXFirmware, "/srv/fw"), TEETDX, "error: ENARX_TDX_FIRMWARE: /srv/fw is not a regular file"},
		{"EnvOtherTEE", fstest.MapFS{"usr/share/ovmf/OVMF.amdsev.fd": fw}, env(EnvTDXFirmware, "/srv/fw.fd"), TEESNP, "/usr/share/ovmf/OVMF.amdsev.fd"},
		{"Descriptor", fstest.MapFS{
			"usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json": snpDesc, "opt/fw/amdsev.fd": fw,
			"usr/share/ovmf/OVMF.amdsev.fd": fw,
		}, nil, TEESNP, "/opt/fw/amdsev.fd"},
		{"DescriptorForOtherTEE", fstest.MapFS{
			"usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json": snpDesc, "opt/fw/amdsev.fd": fw,
		}, nil, TEETDX, "error: no tdx firmware found"},
		{"DescriptorFileMissing", fstest.MapFS{
			"usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json": snpDesc, "usr/share/edk2/ovmf/OVMF.amdsev.fd": fw,
		}, nil, TEESNP, "/usr/share/edk2/ovmf/OVMF.amdsev.fd"},
		{"DescriptorHiddenByEtc", fstest.MapFS{
			"usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json": snpDesc, "opt/fw/amdsev.fd": fw,
			"etc/qemu/firmware/60-edk2-x86_64-amdsev.json": {}, "usr/share/ovmf/OVMF.amdsev.fd": fw,
		}, nil, TEESNP, "/usr/share/ovmf/OVMF.amdsev.fd"},
		{"DescriptorReplacedByEtc", fstest.MapFS{
			"usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json": snpDesc, "opt/fw/amdsev.fd": fw,
			"etc/qemu/firmware/60-edk2-x86_64-amdsev.json": descriptor("/opt/fw/mine.fd", "memory", "amd-sev-snp"), "opt/fw/mine.fd": fw,
		}, nil, TEESNP, "/opt/fw/mine.fd"},
		{"DescriptorOrderByName", fstest.MapFS{
			"usr/share/qemu/firmware/60-b.json": descriptor("/fw/b.fd", "memory", "intel-tdx"), "fw/b.fd": fw,
			"etc/qemu/firmware/70-a.json": descriptor("/fw/a.fd", "memory", "intel-tdx"), "fw/a.fd": fw,
		}, nil, TEETDX, "/fw/b.fd"},
		{"UserDescriptor", fstest.MapFS{
			"usr/share/qemu/firmware/60-b.json": descriptor("/fw/b.fd", "memory", "intel-tdx"), "fw/b.fd": fw,
			"home/u/.config/qemu/firmware/60-b.json": descriptor("/fw/u.fd", "memory", "intel-tdx"), "fw/u.fd": fw,
		}, env("HOME", "/home/u"), TEETDX, "/fw/u.fd"},
		{"EnrolledKeysLast", fstest.MapFS{
			"usr/share/qemu/firmware/40-ms.json": descriptor("/fw/ms.fd", "memory", "intel-tdx", "enrolled-keys", "secure-boot"), "fw/ms.fd": fw,
			"usr/share/qemu/firmware/60-plain.json": descriptor("/fw/plain.fd", "memory", "intel-tdx"), "fw/plain.fd": fw,
		}, nil, TEETDX, "/fw/plain.fd"},
		{"EnrolledKeysOnly", fstest.MapFS{
			"usr/share/qemu/firmware/40-ms.json": descriptor("/fw/ms.fd", "memory", "intel-tdx", "enrolled-keys"), "fw/ms.fd": fw,
		}, nil, TEETDX, "/fw/ms.fd"},
		{"FlashSkipped", fstest.MapFS{
			"usr/share/qemu/firmware/50-flash.json": descriptor("/fw/code.fd", "flash", "amd-sev-snp"), "fw/code.fd": fw,
		}, nil, TEESNP, "error: no sev-snp firmware found"},
		{"KnownTDX", fstest.MapFS{"usr/share/ovmf/OVMF.inteltdx.ms.fd": fw}, nil, TEETDX, "/usr/share/ovmf/OVMF.inteltdx.ms.fd"},
		{"KnownTDXPreferred", fstest.MapFS{"usr/share/ovmf/OVMF.inteltdx.ms.fd": fw, "usr/share/edk2/ovmf/OVMF.inteltdx.fd": fw}, nil, TEETDX, "/usr/share/edk2/ovmf/OVMF.inteltdx.fd"},
		{"NoneSNP", fstest.MapFS{"usr/share/OVMF/OVMF_CODE_4M.fd": fw}, nil, TEESNP, "error: no sev-snp firmware found (looked at $ENARX_SNP_FIRMWARE"},
		{"NoneSNPOverride", fstest.MapFS{}, nil, TEESNP, "error: or set ENARX_SNP_FIRMWARE to its path"},
		{"NoneSNPHint", fstest.MapFS{}, nil, TEESNP, "error: `apt-get install ovmf-amdsev` on Debian unstable (forky)"},
		{"NoneTDXHint", fstest.MapFS{}, nil, TEETDX, "error: `apt-get install ovmf-inteltdx`"},
		{"Plain", fstest.MapFS{}, nil, TEENone, "error: no firmware is needed for a none VM"},
		{"EnvWrongKind", fstest.MapFS{"srv/tdvf.fd": {Data: tdvf}}, env(EnvSNPFirmware, "/srv/tdvf.fd"), TEESNP,
			"error: ENARX_SNP_FIRMWARE: /srv/tdvf.fd is not an AmdSev OVMF build (OvmfPkg/AmdSev) with the SEV metadata and kernel hashes area: its footer table has no entry dc886566-984a-4798-a75e-5585a7bf67cc"},
		{"EnvNotOVMF", fstest.MapFS{"srv/fw.fd": {Data: []byte("MZ not firmware")}}, env(EnvTDXFirmware, "/srv/fw.fd"), TEETDX,
			"error: ENARX_TDX_FIRMWARE: /srv/fw.fd is not an OVMF/TDVF image: no OVMF footer GUID table"},
		{"KnownWrongKindPassedOver", fstest.MapFS{
			"usr/share/ovmf/OVMF.amdsev.fd": {Data: tdvf}, "usr/share/edk2/ovmf/OVMF.amdsev.fd": {Data: amdsev},
		}, nil, TEESNP, "/usr/share/edk2/ovmf/OVMF.amdsev.fd"},
		{"DescriptorWrongKindReported", fstest.MapFS{
			"usr/share/qemu/firmware/60-x.json": descriptor("/fw/x.fd", "memory", "amd-sev-snp"), "fw/x.fd": {Data: image(ovmf.SEVMetadataGUID)},
		}, nil, TEESNP, "error: passed over: /fw/x.fd is not an AmdSev OVMF build"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := FindFirmwareIn(c.files, c.getenv, c.tee)
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("FindFirmwareIn = %q, %v; want an error with %q", got, err, want)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("FindFirmwareIn = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestParseFirmwareDescriptor(t *testing.T) {
	for _, c := range []struct {
		name    string
		json    string
		file    string
		enrolls bool
	}{
		{"Debian", `{"description":"OVMF for AMD SEV","interface-types":["uefi"],"mapping":{"device":"memory","filename":"/usr/share/ovmf/OVMF.amdsev.fd"},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["amd-sev","amd-sev-es","amd-sev-snp","verbose-dynamic"],"tags":[]}`, "/usr/share/ovmf/OVMF.amdsev.fd", false},
		{"Glob", `{"mapping":{"device":"memory","filename":"/fw//a/../b.fd"},"targets":[{"architecture":"i386","machines":["pc-q35-*"]},{"architecture":"x86_64","machines":["pc-i440fx-*","pc-*"]}],"features":["amd-sev-snp","enrolled-keys"]}`, "/fw/b.fd", true},
		{"NoFeature", `{"mapping":{"device":"memory","filename":"/fw.fd"},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["amd-sev"]}`, "", false},
		{"I440fxOnly", `{"mapping":{"device":"memory","filename":"/fw.fd"},"targets":[{"architecture":"x86_64","machines":["pc-i440fx-*"]}],"features":["amd-sev-snp"]}`, "", false},
		{"Relative", `{"mapping":{"device":"memory","filename":"fw.fd"},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["amd-sev-snp"]}`, "", false},
		{"KeyCase", `{"Mapping":{"device":"memory","filename":"/fw.fd"},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["amd-sev-snp"]}`, "", false},
		{"Empty", ``, "", false},
		{"Array", `[]`, "", false},
	} {
		file, enrolled, ok := ParseFirmwareDescriptor([]byte(c.json), "amd-sev-snp")
		if file != c.file || ok != (c.file != "") || enrolled != c.enrolls {
			t.Errorf("%s: = %q, %v, %v", c.name, file, enrolled, ok)
		}
	}
}

// FuzzParseFirmwareDescriptor: what ParseFirmwareDescriptor accepts is a
// JSON object whose "features" list holds the feature and whose "mapping"
// is a memory mapping of the returned file, an absolute clean path.
func FuzzParseFirmwareDescriptor(f *testing.F) {
	f.Add([]byte(`{"mapping":{"device":"memory","filename":"/usr/share/ovmf/OVMF.amdsev.fd"},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["amd-sev-snp"]}`), false)
	f.Add([]byte(`{"mapping":{"device":"memory","filename":"/fw.fd"},"targets":[{"architecture":"x86_64","machines":["*"]}],"features":["intel-tdx","enrolled-keys"]}`), true)
	f.Fuzz(func(t *testing.T, b []byte, tdx bool) {
		feature := "amd-sev-snp"
		if tdx {
			feature = "intel-tdx"
		}
		file, enrolled, ok := ParseFirmwareDescriptor(b, feature)
		if !ok {
			if file != "" || enrolled {
				t.Fatalf("not ok, yet %q, %v", file, enrolled)
			}
			return
		}
		if !path.IsAbs(file) || path.Clean(file) != file {
			t.Fatalf("file %q is not absolute and clean", file)
		}
		var d struct {
			Mapping  map[string]any `json:"mapping"`
			Features []any          `json:"features"`
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			t.Fatalf("accepted invalid JSON: %v", err)
		}
		json.Unmarshal(top["mapping"], &d.Mapping)
		json.Unmarshal(top["features"], &d.Features)
		fname, _ := d.Mapping["filename"].(string)
		if d.Mapping["device"] != "memory" || path.Clean(fname) != file {
			t.Fatalf("mapping %v does not give %q", d.Mapping, file)
		}
		if !slices.Contains(d.Features, any(feature)) || enrolled != slices.Contains(d.Features, any("enrolled-keys")) {
			t.Fatalf("features %v (want %s; enrolled-keys %v)", d.Features, feature, enrolled)
		}
	})
}

// plainFS hides its files' ReadAt and Seek.
type plainFS struct{ fs.FS }

type plainFile struct{ fs.File }

func (p plainFS) Open(name string) (fs.File, error) {
	f, err := p.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return plainFile{f}, nil
}

func TestCheckFirmwareReaders(t *testing.T) {
	big := append(bytes.Repeat([]byte{0}, 200<<10), amdsev...) // the table lies past the first 64 KiB
	dir := t.TempDir()
	p := filepath.Join(dir, "OVMF.amdsev.fd")
	if err := os.WriteFile(p, big, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, fsys := range map[string]fs.FS{
		"host":  HostFS(),
		"map":   fstest.MapFS{rel(p): {Data: big}},
		"plain": plainFS{fstest.MapFS{rel(p): {Data: big}}},
	} {
		if err := CheckFirmware(fsys, p, TEESNP); err != nil {
			t.Errorf("%s: CheckFirmware = %v", name, err)
		}
		if err := CheckFirmware(fsys, p, TEETDX); err == nil || !strings.Contains(err.Error(), "is not a TDVF build with TDX metadata") {
			t.Errorf("%s: CheckFirmware as TDVF = %v", name, err)
		}
	}
	if err := CheckFirmware(HostFS(), filepath.Join(dir, "nope"), TEESNP); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
