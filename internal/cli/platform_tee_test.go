package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/attestation/policy"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/snpmeasure"
	"github.com/enarx-go/enarx/microvm/tdxmeasure"
	"github.com/enarx-go/enarx/microvm/vmm"
)

func runCmd(c *cobra.Command, args ...string) ([]byte, error) {
	var out bytes.Buffer
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&out)
	err := c.Execute()
	return out.Bytes(), err
}

// The policy that `platform snp|tdx measurement --emulated` prints must load
// and trust the emulated root.
func TestMeasurementPrintsLoadablePolicy(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for name, cmd := range map[string]func() ([]byte, error){
		"snp": func() ([]byte, error) { return runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--emulated") },
		"tdx": func() ([]byte, error) { return runCmd(newPlatformTDXCmd(&globals{}), "measurement", "--emulated") },
	} {
		out, err := cmd()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(out), "LOCAL TEST ROOT") {
			t.Errorf("%s: output does not warn that the root is a test root:\n%s", name, out)
		}
		p, err := policy.Parse(out)
		if err != nil {
			t.Fatalf("%s: printed policy does not load: %v\n%s", name, err, out)
		}
		if len(p.EmulatedRoots()) != 1 {
			t.Fatalf("%s: printed policy trusts %v", name, p.EmulatedRoots())
		}
	}
}

// gunzipFixture writes a gzipped test fixture of another package to dir.
func gunzipFixture(t *testing.T, gz, sha, dir string) string {
	t.Helper()
	p := filepath.Join(dir, strings.TrimSuffix(filepath.Base(gz), ".gz"))
	if err := os.WriteFile(p, testutil.ReadGzipPinned(t, gz, sha), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return lines[len(lines)-1]
}

var hex96 = regexp.MustCompile(`^[0-9a-f]{96}$`)

// `platform snp measurement --ovmf … --kernel …` prints the launch digest
// on its last line: the library's result, and sev-snp-measure's for the
// same inputs (the vector in microvm/snpmeasure/testdata).
func TestSNPMeasurementOffline(t *testing.T) {
	dir := t.TempDir()
	ovmfPath := gunzipFixture(t, "../../microvm/snpmeasure/testdata/OVMF.amdsev.fd.gz",
		"3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f", dir)
	kernel := testutil.DeterministicBytes("kernel-A", 1<<20)
	initrd := testutil.DeterministicBytes("initrd-A", 2<<20+7)
	kPath, iPath := writeFile(t, dir, "kernel", kernel), writeFile(t, dir, "initrd", initrd)

	// Vector debian-kernel-initrd-append-1-Genoa of microvm/snpmeasure/testdata/vectors.json.
	const want = "b6912ebcc26e97d6508d03c98094d1fcc3823de966cef92e8cb4febddbeab0abe8929f3910adb71e118cc454b8d8db8b"
	out, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--kernel", kPath,
		"--initrd", iPath, "--append", "console=ttyS0 panic=-1", "--vcpus", "1", "--vcpu-type", "EPYC-Genoa", "--guest-features", "0x1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := lastLine(out)
	if !hex96.MatchString(got) {
		t.Fatalf("last line %q is not 96 hex digits:\n%s", got, out)
	}
	ovmfBytes, _ := os.ReadFile(ovmfPath)
	lib, err := snpmeasure.Measure(snpmeasure.Options{OVMF: ovmfBytes, Kernel: kernel, Initrd: initrd,
		Cmdline: "console=ttyS0 panic=-1", VCPUs: 1, VCPUType: "EPYC-Genoa", GuestFeatures: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got != lib.String() || got != want {
		t.Errorf("CLI %s, library %s, sev-snp-measure %s", got, lib, want)
	}
	if !strings.Contains(string(out), kPath) || !strings.Contains(string(out), "EPYC-Genoa") {
		t.Errorf("the description does not name the inputs:\n%s", out)
	}

	// A firmware-only launch, and JSON.
	out, err = runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--no-kernel",
		"--vcpus", "4", "--vcpu-type", "EPYC", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var js struct {
		Measurement string `json:"measurement"`
	}
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Vector debian-nokernel-4-EPYC.
	if js.Measurement != "13a6ae9fbaa31c91ade309c36bd5214729438abac318e01176e02a97b8bec11a4bce86b4d2b1fba2ec0481dd24ff525f" {
		t.Errorf("firmware-only digest %s", js.Measurement)
	}
	// The digest covers the firmware only, and the output says so.
	out, err = runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--no-kernel", "--vcpus", "4", "--vcpu-type", "EPYC")
	if err != nil || !strings.Contains(string(out), "WARNING: without -kernel the digest covers the firmware only") || lastLine(out) != js.Measurement {
		t.Errorf("firmware-only launch: %v\n%s", err, out)
	}
}

func TestSNPMeasurementOfflineErrors(t *testing.T) {
	dir := t.TempDir()
	ovmfPath := gunzipFixture(t, "../../microvm/snpmeasure/testdata/OVMF.amdsev.fd.gz",
		"3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f", dir)
	k := writeFile(t, dir, "kernel", []byte("kernel"))
	notOVMF := writeFile(t, dir, "plain.fd", make([]byte, 8192))
	base := []string{"measurement", "--ovmf", ovmfPath, "--vcpus", "2", "--vcpu-type", "EPYC-v4"}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no ovmf":       {[]string{"measurement", "--vcpus", "2", "--vcpu-type", "EPYC", "--kernel", k}, "--ovmf is required"},
		"no vcpus":      {[]string{"measurement", "--ovmf", ovmfPath, "--vcpu-type", "EPYC", "--kernel", k}, "--vcpus and --vcpu-type are required"},
		"bad vcpu type": {append(base[:5:5], "--vcpu-type", "EPYC-Foo", "--kernel", k), `unknown vCPU type "EPYC-Foo": known types are EPYC,`},
		"decimal feat":  {append(base, "--kernel", k, "--guest-features", "21"), "with a 0x prefix"},
		"bad hex feat":  {append(base, "--kernel", k, "--guest-features", "0xzz"), "not a 64-bit hex number"},
		"no SNPActive":  {append(base, "--kernel", k, "--guest-features", "0x20"), "SNPActive"},
		"initrd alone":  {append(base, "--initrd", k), "need --kernel"},
		"both":          {append(base, "--no-kernel", "--kernel", k), "cannot be combined"},
		"missing file":  {append(base, "--kernel", filepath.Join(dir, "nope")), "--kernel: open"},
		"not AmdSev":    {[]string{"measurement", "--ovmf", notOVMF, "--vcpus", "1", "--vcpu-type", "EPYC", "--no-kernel"}, "not an AmdSev OVMF build"},
		"with emulated": {append(base, "--kernel", k, "--emulated"), "--emulated cannot be combined"},
		"zero vcpus":    {[]string{"measurement", "--ovmf", ovmfPath, "--vcpus", "-1", "--vcpu-type", "EPYC", "--no-kernel"}, "vCPU count -1"},
	} {
		out, err := runCmd(newPlatformSNPCmd(&globals{}), c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q\n%s", name, err, c.want, out)
		}
	}
}

// `platform tdx measurement --firmware` prints MRTD on its last line, says
// which RTMRs it does not compute, and agrees with microvm/tdxmeasure's
// reference vectors.
func TestTDXMeasurementOffline(t *testing.T) {
	dir := t.TempDir()
	fw := gunzipFixture(t, "../../microvm/tdxmeasure/testdata/OVMF.inteltdx.ms.fd.gz",
		"a265075b4147a096109e501e76196df1ec8a18659c26f7401492c597ec88f312", dir)
	for variant, want := range map[string]string{
		"single-pass": "a7a1f751abc454f9cbab198ca8d2edb2821935df525c74182b5e776cb0929e8c59aefecce725b0d08a5e9d3d3183bd08",
		"two-pass":    "b90b236113eb4c0d4df4ef590568c14e6028a3a31d7e8ac63dee9845df5008d3ebf82d4f5974e933798f65d7a279b9a9",
	} {
		out, err := runCmd(newPlatformTDXCmd(&globals{}), "measurement", "--firmware", fw, "--variant", variant)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := lastLine(out); got != want {
			t.Errorf("%s: last line %q, want %s", variant, got, want)
		}
		for _, s := range []string{"RTMR0", "RTMR1", "RTMR2", "not computed"} {
			if !strings.Contains(string(out), s) {
				t.Errorf("output does not mention %q:\n%s", s, out)
			}
		}
	}
	img, _ := os.ReadFile(fw)
	lib, err := tdxmeasure.MRTD(img, tdxmeasure.SinglePass)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(newPlatformTDXCmd(&globals{}), "measurement", "--firmware", fw)
	if err != nil || lastLine(out) != lib.String() {
		t.Errorf("default variant: %q, %v; library %s", lastLine(out), err, lib)
	}
	plain := writeFile(t, dir, "plain.fd", make([]byte, 8192))
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"bad variant":   {[]string{"measurement", "--firmware", fw, "--variant", "three-pass"}, "want single-pass"},
		"no firmware":   {[]string{"measurement", "--variant", "two-pass"}, "--firmware FILE is required"},
		"not TDVF":      {[]string{"measurement", "--firmware", plain}, "not a TDX (TDVF) firmware build"},
		"with emulated": {[]string{"measurement", "--firmware", fw, "--emulated"}, "--emulated cannot be combined"},
	} {
		out, err := runCmd(newPlatformTDXCmd(&globals{}), c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q\n%s", name, err, c.want, out)
		}
	}
}

// With no kernel flags, `platform snp measurement` measures the Keep image
// that image.Locate finds and prints [snp] policy lines that load, with the
// digest of the same inputs given explicitly.
func TestSNPMeasurementKeepImage(t *testing.T) {
	dir := t.TempDir()
	ovmfPath := gunzipFixture(t, "../../microvm/snpmeasure/testdata/OVMF.amdsev.fd.gz",
		"3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f", dir)
	imgDir := filepath.Join(dir, "keep")
	if err := os.Mkdir(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, initrd := testutil.DeterministicBytes("keep-kernel", 300<<10), testutil.DeterministicBytes("keep-initrd", 200<<10)
	kPath := writeFile(t, imgDir, image.KernelFile, kernel)
	iPath := writeFile(t, imgDir, image.InitrdFile, initrd)
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	m, err := json.Marshal(image.Manifest{Format: image.ManifestFormat, Kernel: image.KernelFile, KernelSHA256: sum(kernel),
		Initrd: image.InitrdFile, InitrdSHA256: sum(initrd), Cmdline: image.DefaultCmdline})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, imgDir, image.ManifestFile, m)
	t.Setenv(image.EnvImage, imgDir)

	out, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--vcpus", "2", "--vcpu-type", "EPYC-v4")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := policy.Parse(out); err != nil {
		t.Fatalf("printed policy does not load: %v\n%s", err, out)
	}
	explicit, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--vcpus", "2", "--vcpu-type", "EPYC-v4",
		"--kernel", kPath, "--initrd", iPath, "--append", image.DefaultCmdline)
	if err != nil {
		t.Fatalf("%v\n%s", err, explicit)
	}
	want := lastLine(explicit)
	if got := lastLine(out); got != fmt.Sprintf("hash = [%q]", want) {
		t.Errorf("keep image policy line %q, explicit digest %s", got, want)
	}
	if !strings.Contains(string(out), "[snp]") || !strings.Contains(string(out), imgDir) {
		t.Errorf("output lacks the [snp] table or the image directory:\n%s", out)
	}

	// Without --vcpu-type: the sev backend's model. Another model would
	// measure a launch the sev backend never makes: refused.
	if out, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--vcpus", "2"); err != nil || lastLine(out) != fmt.Sprintf("hash = [%q]", want) {
		t.Errorf("default vCPU type: %v\n%s", err, out)
	}
	if _, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--vcpus", "2", "--vcpu-type", "EPYC-Milan"); err == nil || !strings.Contains(err.Error(), "-cpu EPYC-v4") {
		t.Errorf("a vCPU type the sev backend never launches: %v", err)
	}

	// Without --ovmf: the firmware the sev backend would use.
	t.Setenv(vmm.EnvSNPFirmware, ovmfPath)
	out, err = runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--vcpus", "2", "--vcpu-type", "EPYC-v4")
	if err != nil || lastLine(out) != fmt.Sprintf("hash = [%q]", want) {
		t.Errorf("default firmware: %v\n%s", err, out)
	}
	t.Setenv(vmm.EnvSNPFirmware, filepath.Join(dir, "no-such.fd"))
	if _, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--vcpus", "2", "--vcpu-type", "EPYC-v4"); err == nil || !strings.Contains(err.Error(), "--ovmf") {
		t.Errorf("no firmware: %v, want an error that suggests --ovmf", err)
	}

	t.Setenv(image.EnvImage, filepath.Join(dir, "nowhere"))
	if _, err := runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--ovmf", ovmfPath, "--vcpus", "1", "--vcpu-type", "EPYC"); err == nil || !strings.Contains(err.Error(), image.EnvImage) {
		t.Errorf("missing image: %v", err)
	}
}
