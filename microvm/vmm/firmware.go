package vmm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

// Firmware overrides: an absolute path to the firmware image.
const (
	EnvSNPFirmware = "ENARX_SNP_FIRMWARE"
	EnvTDXFirmware = "ENARX_TDX_FIRMWARE"
)

// firmwareKind is what FindFirmware knows of one TEE's firmware.
type firmwareKind struct {
	env     string
	feature string // QEMU firmware descriptor feature
	// known are the images distributions ship, in order of preference.
	known   []string
	install string
}

var firmwareKinds = map[TEE]firmwareKind{
	TEESNP: {
		env:     EnvSNPFirmware,
		feature: "amd-sev-snp",
		known: []string{
			"/usr/share/ovmf/OVMF.amdsev.fd",      // Debian unstable (forky) ovmf-amdsev, Ubuntu 25.04+ ovmf
			"/usr/share/edk2/ovmf/OVMF.amdsev.fd", // Fedora, RHEL, CentOS edk2-ovmf
		},
		install: "install an AmdSev OVMF build (the OvmfPkg/AmdSev platform, which carries the SEV hashes table for measured direct boot): " +
			"`apt-get install ovmf-amdsev` on Debian unstable (forky), `ovmf` on Ubuntu 25.04 or later, `edk2-ovmf` on Fedora/RHEL; " +
			"Debian 12 and 13 and Ubuntu 24.04 ship none, so build edk2's OvmfPkg/AmdSev/AmdSevX64.dsc",
	},
	TEETDX: {
		env:     EnvTDXFirmware,
		feature: "intel-tdx",
		known: []string{
			"/usr/share/edk2/ovmf/OVMF.inteltdx.fd", // Fedora, RHEL, CentOS edk2-ovmf
			// Debian unstable (forky) ovmf-inteltdx: Microsoft's keys
			// enrolled, so Secure Boot may refuse a kernel they did not sign.
			"/usr/share/ovmf/OVMF.inteltdx.ms.fd",
		},
		install: "install a TDVF build (edk2's OvmfPkg/IntelTdx platform): `apt-get install ovmf-inteltdx` on Debian unstable (forky), " +
			"`edk2-ovmf` on Fedora/RHEL; Debian 12 and 13 ship none, so build edk2's OvmfPkg/IntelTdx/IntelTdxX64.dsc",
	},
}

// FirmwareDescriptorDirs are where QEMU firmware descriptors
// (docs/interop/firmware.json) live, most general first. A per-user
// directory ($XDG_CONFIG_HOME/qemu/firmware) is searched after them.
var FirmwareDescriptorDirs = []string{"/usr/share/qemu/firmware", "/etc/qemu/firmware"}

// FindFirmware finds the firmware image for an SEV-SNP or TDX VM on this
// machine; see FindFirmwareIn.
func FindFirmware(tee TEE) (string, error) { return FindFirmwareIn(HostFS(), os.Getenv, tee) }

// FindFirmwareIn finds the firmware for tee in fsys (the host root):
//
//  1. $ENARX_SNP_FIRMWARE / $ENARX_TDX_FIRMWARE, when set: an absolute path
//     that must exist (a wrong override is an error, never skipped);
//  2. the QEMU firmware descriptors, in QEMU's documented order: the first
//     whose feature list names the TEE ("amd-sev-snp", "intel-tdx"), that
//     is loaded into memory (-bios) on x86_64 q35 and whose file exists;
//  3. the images distributions ship under fixed names.
//
// It returns an absolute host path. getenv may be nil.
func FindFirmwareIn(fsys fs.FS, getenv func(string) string, tee TEE) (string, error) {
	k, ok := firmwareKinds[tee]
	if !ok {
		return "", fmt.Errorf("no firmware is needed for a %s VM", tee)
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if p := getenv(k.env); p != "" {
		if !path.IsAbs(p) {
			return "", fmt.Errorf("%s=%q: give an absolute path", k.env, p)
		}
		if err := CheckFirmware(fsys, p, tee); err != nil {
			return "", fmt.Errorf("%s: %w", k.env, err)
		}
		return path.Clean(p), nil
	}
	dirs := slices.Clone(FirmwareDescriptorDirs)
	if x := getenv("XDG_CONFIG_HOME"); path.IsAbs(x) {
		dirs = append(dirs, path.Join(x, "qemu/firmware"))
	} else if h := getenv("HOME"); path.IsAbs(h) {
		dirs = append(dirs, path.Join(h, ".config/qemu/firmware"))
	}
	// Firmware with Secure Boot keys enrolled comes last: it boots only
	// kernels signed by those keys.
	var candidates []string
	files := descriptorFiles(fsys, dirs)
	for _, enrolled := range []bool{false, true} {
		for _, d := range files {
			fw, keys, ok := descriptorFirmware(fsys, d, k.feature)
			if ok && keys == enrolled {
				candidates = append(candidates, fw)
			}
		}
	}
	candidates = append(candidates, k.known...)
	var rejected []string
	for _, p := range candidates {
		err := CheckFirmware(fsys, p, tee)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			rejected = append(rejected, err.Error())
		}
	}
	why := ""
	if len(rejected) > 0 {
		why = "; passed over: " + strings.Join(rejected, "; ")
	}
	return "", fmt.Errorf("no %s firmware found (looked at $%s, the QEMU firmware descriptors in %s, and %s%s): %s; or set %s to its path",
		tee, k.env, strings.Join(dirs, ", "), strings.Join(k.known, ", "), why, k.install, k.env)
}

// maxFirmwareTail is how much of an image's end CheckFirmware reads: the
// footer table (at most 64 KiB, its length is a uint16) and the trailer.
const maxFirmwareTail = 64<<10 + ovmf.TrailerSize

// CheckFirmware checks that the image at p (an absolute path in fsys) is a
// regular file of the firmware kind tee needs, by its OVMF footer GUID
// table: for SEV-SNP an AmdSev build (SEV metadata and the area QEMU writes
// the kernel hashes to, which measured direct boot needs), for TDX a TDVF
// build (TDX metadata). A missing file's error wraps fs.ErrNotExist.
func CheckFirmware(fsys fs.FS, p string, tee TEE) error {
	f, err := fsys.Open(rel(path.Clean(p)))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	tail, err := readTail(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	t, err := ovmf.ParseTable(tail)
	if err != nil {
		return fmt.Errorf("%s is not an OVMF/TDVF image: %w", p, err)
	}
	var need []ovmf.GUID
	var kind string
	switch tee {
	case TEESNP:
		need, kind = []ovmf.GUID{ovmf.SEVMetadataGUID, ovmf.SEVHashTableGUID}, "an AmdSev OVMF build (OvmfPkg/AmdSev) with the SEV metadata and kernel hashes area"
	case TEETDX:
		need, kind = []ovmf.GUID{ovmf.TDXMetadataGUID}, "a TDVF build with TDX metadata"
	default:
		return fmt.Errorf("no firmware is needed for a %s VM", tee)
	}
	for _, g := range need {
		if _, ok := t.Find(g); !ok {
			return fmt.Errorf("%s is not %s: its footer table has no entry %s", p, kind, g)
		}
	}
	return nil
}

// readTail reads the last maxFirmwareTail bytes of f (size bytes long).
func readTail(f fs.File, size int64) ([]byte, error) {
	n := min(size, maxFirmwareTail)
	if ra, ok := f.(io.ReaderAt); ok {
		b := make([]byte, n)
		if _, err := ra.ReadAt(b, size-n); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
	if _, err := io.CopyN(io.Discard, f, size-n); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, n))
}

// descriptorFiles lists the descriptor files to read, in QEMU's order:
// sorted by file name, a more specific directory's file replacing a
// same-named one, an empty file hiding it.
func descriptorFiles(fsys fs.FS, dirs []string) []string {
	byName := map[string]string{}
	for _, d := range dirs {
		entries, err := fs.ReadDir(fsys, rel(d))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
				continue
			}
			byName[e.Name()] = path.Join(d, e.Name())
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]string, 0, len(names))
	for _, n := range names {
		files = append(files, byName[n])
	}
	return files
}

// maxDescriptor bounds a descriptor file (real ones are about 1 KiB).
const maxDescriptor = 64 << 10

func descriptorFirmware(fsys fs.FS, file, feature string) (fw string, enrolledKeys, ok bool) {
	f, err := fsys.Open(rel(file))
	if err != nil {
		return "", false, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDescriptor+1))
	if err != nil || len(b) > maxDescriptor {
		return "", false, false
	}
	return ParseFirmwareDescriptor(b, feature)
}

// ParseFirmwareDescriptor reads a QEMU firmware descriptor
// (docs/interop/firmware.json) and returns the image it names when the
// descriptor lists feature, maps the image into memory (QEMU's -bios),
// targets x86_64 q35 machines and names an absolute path; enrolledKeys
// reports the "enrolled-keys" feature (Secure Boot keys in the image). Keys
// are matched exactly, as QEMU's schema has them. An empty or malformed
// descriptor gives ok = false.
func ParseFirmwareDescriptor(b []byte, feature string) (file string, enrolledKeys, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return "", false, false
	}
	mapping, _ := field[map[string]json.RawMessage](top, "mapping")
	device, _ := field[string](mapping, "device")
	file, _ = field[string](mapping, "filename")
	if device != "memory" || !path.IsAbs(file) || strings.ContainsRune(file, 0) {
		return "", false, false
	}
	features, _ := field[[]string](top, "features")
	if !slices.Contains(features, feature) {
		return "", false, false
	}
	targets, _ := field[[]map[string]json.RawMessage](top, "targets")
	for _, t := range targets {
		arch, _ := field[string](t, "architecture")
		machines, _ := field[[]string](t, "machines")
		if arch == "x86_64" && slices.ContainsFunc(machines, q35) {
			return path.Clean(file), slices.Contains(features, "enrolled-keys"), true
		}
	}
	return "", false, false
}

// field decodes m[key] as a T.
func field[T any](m map[string]json.RawMessage, key string) (T, bool) {
	var v T
	raw, ok := m[key]
	if !ok || json.Unmarshal(raw, &v) != nil {
		return v, false
	}
	return v, true
}

// q35 reports whether a descriptor's machine pattern ("pc-q35-*",
// "pc-q35-9.1") covers q35 machines.
func q35(pattern string) bool {
	if pattern == "q35" || strings.HasPrefix(pattern, "pc-q35-") {
		return true
	}
	ok, err := path.Match(pattern, "pc-q35-10.1")
	return err == nil && ok
}
