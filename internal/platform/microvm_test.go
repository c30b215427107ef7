package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
	"github.com/enarx-go/enarx/microvm/vmm/vmmtest"
)

// The microVM backends' rows, on faked machines: the file system, CPUID
// and environment are faked; QEMU is a script that answers as a QEMU
// release does and is probed by the real qemu.Probe; the Keep image is a
// directory the real image.Load/Locate reads; firmware is found by the
// real vmm.FindFirmwareIn in the faked file system.

var microVMs = []string{"kvm", "sev", "tdx-vm"}

// fakeQEMU writes an executable that answers `--version` as QEMU version
// does, and accepts -sandbox when sandbox is set, and returns a probe of
// it that counts its calls.
func fakeQEMU(t *testing.T, version string, sandbox bool, calls *int) func() (*qemu.Info, error) {
	t.Helper()
	sb := `echo "qemu-system-x86_64: -sandbox on: There is no option group 'sandbox'" >&2; exit 1`
	if sandbox {
		sb = `echo "QEMU emulator version ` + version + `"; exit 0`
	}
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
--version) printf 'QEMU emulator version %s (enarx test)\nCopyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers\n'; exit 0;;
-sandbox) %s;;
esac
exit 2
`, version, sb)
	p := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return func() (*qemu.Info, error) {
		if calls != nil {
			*calls++
		}
		return qemu.Probe(context.Background(), p)
	}
}

// noQEMU is the probe of a machine without QEMU.
func noQEMU(t *testing.T) func() (*qemu.Info, error) {
	missing := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	return func() (*qemu.Info, error) { return qemu.Probe(context.Background(), missing) }
}

// keepImage returns image.Load of a valid test image.
func keepImage(t *testing.T) func() (*image.Image, error) {
	dir := WriteTestImage(t)
	return func() (*image.Image, error) { return image.Load(dir) }
}

// noKeepImage is image.Locate on a machine without an image: nothing next
// to the test binary, in an empty data directory, or in the system ones.
func noKeepImage(t *testing.T) func() (*image.Image, error) {
	t.Setenv(image.EnvImage, "")
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	if img, err := image.Locate(); err == nil {
		t.Skipf("this machine has a Keep image installed (%s); the test needs a machine without one", img.Dir)
	}
	return image.Locate
}

var (
	amdSevOVMF = &fstest.MapFile{Data: vmmtest.AmdSevOVMF()}
	tdvf       = &fstest.MapFile{Data: vmmtest.TDVF()}
	// plainOVMF is an OvmfPkg/OvmfX64 build: SEV metadata but no kernel
	// hashes area, so it cannot measure a direct kernel boot.
	plainOVMF = &fstest.MapFile{Data: vmmtest.PlainOVMF()}
)

func getenv(kv ...string) func(string) string {
	return func(k string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1]
			}
		}
		return ""
	}
}

func registered(names ...string) []backend.Backend {
	var out []backend.Backend
	for _, n := range names {
		out = append(out, fakeBackend{name: n})
	}
	return out
}

func snpCPU() fakeCPU {
	cpu := newCPU("AuthenticAMD", "AMD EPYC 9654 96-Core Processor")
	cpu[0x8000001f<<32] = [4]uint32{1<<0 | 1<<1 | 1<<2 | 1<<4, 5<<6 | 51, 1006, 1}
	return cpu
}

// failingRowsHaveHints checks that each failing verdict row says what to
// do: a hint, or for the Configured row the backend's own error.
func failingRowsHaveHints(t *testing.T, b Backend) {
	t.Helper()
	for _, d := range append(append([]Datum{}, b.Data...), b.Config...) {
		if d.Pass {
			continue
		}
		if d.Name == "Configured" && d.Info != "" {
			continue
		}
		if d.Mesg == "" {
			t.Errorf("%s: failing row %q has no hint: %+v", b.Name, d.Name, d)
		}
	}
}

func TestMicroVMNothing(t *testing.T) {
	env := Env{FS: fstest.MapFS{}, QEMU: noQEMU(t), KeepImage: noKeepImage(t), Sandbox: allSandbox}
	r := Collect("v", env)
	for _, name := range microVMs {
		b := find(t, r, name)
		if b.Pass() {
			t.Errorf("%s passes on a machine with nothing", name)
		}
		failingRowsHaveHints(t, b)
		if d := row(t, b.Config, "Keep image"); d.Pass || !strings.Contains(d.Mesg, "make keep-image") {
			t.Errorf("%s: Keep image row %+v", name, d)
		}
		if d := row(t, b.Config, "Backend in this build"); d.Pass {
			t.Errorf("%s: unregistered backend row passes", name)
		}
		var q Datum
		for _, d := range b.Config {
			if strings.HasPrefix(d.Name, "QEMU") {
				q = d
			}
		}
		if q.Pass || !strings.Contains(q.Mesg, "install QEMU") {
			t.Errorf("%s: QEMU row %+v", name, q)
		}
	}
	if d := find(t, r, "kvm").Data[0]; d.Pass || !strings.Contains(d.Mesg, "/dev/kvm is missing") || !strings.Contains(d.Mesg, "ENARX_VM_ACCEL=tcg") {
		t.Errorf("kvm driver row %+v", d)
	}
	if d := row(t, find(t, r, "sev").Config, "SEV-SNP firmware"); d.Pass || !strings.Contains(d.Mesg, "AmdSev") {
		t.Errorf("SNP firmware row %+v", d)
	}
	if d := row(t, find(t, r, "tdx-vm").Config, "TDX firmware"); d.Pass || !strings.Contains(d.Mesg, "TDVF") {
		t.Errorf("TDX firmware row %+v", d)
	}
}

func TestMicroVMKVMHostWithQEMU72(t *testing.T) {
	calls := 0
	cpu := newCPU("GenuineIntel", "Intel(R) Xeon(R) Gold 6338")
	env := Env{
		FS:         fstest.MapFS{"dev/kvm": charDev},
		CPUID:      cpu.cpuid,
		QEMU:       fakeQEMU(t, "7.2.22", true, &calls),
		KeepImage:  keepImage(t),
		Registered: registered("kvm", "sev", "tdx-vm"),
	}
	r := Collect("v", env)
	if calls != 1 {
		t.Errorf("QEMU probed %d times for one report, want once", calls)
	}
	kvm := find(t, r, "kvm")
	if !kvm.Pass() {
		t.Errorf("kvm fails on a KVM host with QEMU and an image: %+v", kvm)
	}
	if d := row(t, kvm.Config, "QEMU"); !d.Pass || !strings.HasPrefix(d.Info, "7.2.22 (/") {
		t.Errorf("QEMU row %+v", d)
	}
	if d := row(t, kvm.Config, "QEMU", "Seccomp sandbox (-sandbox)"); !d.Pass {
		t.Errorf("sandbox row %+v", d)
	}
	img := row(t, kvm.Config, "Keep image")
	if m, err := env.KeepImage(); err != nil || !img.Pass || img.Info != fmt.Sprintf("%s (kernel 6.12.0-enarx-test, initrd sha256:%s…)", m.Dir, m.Manifest.InitrdSHA256[:16]) {
		t.Errorf("Keep image row %+v (%v)", img, err)
	}
	sev := find(t, r, "sev")
	if d := row(t, sev.Config, "QEMU 9.1 or newer"); d.Pass || !strings.Contains(d.Mesg, "QEMU 7.2.22") || !strings.Contains(d.Mesg, "install QEMU 9.1 or newer") {
		t.Errorf("sev QEMU row %+v", d)
	}
	if sev.Pass() {
		t.Error("sev passes with QEMU 7.2")
	}
	tdx := find(t, r, "tdx-vm")
	if d := row(t, tdx.Config, "QEMU 10.1 or newer"); d.Pass || !strings.Contains(d.Mesg, "install QEMU 10.1 or newer") {
		t.Errorf("tdx-vm QEMU row %+v", d)
	}

	// The JSON carries the new rows, with real nulls.
	var out bytes.Buffer
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Backends []struct {
			Backend string `json:"backend"`
			Pass    bool   `json:"pass"`
			Config  []struct {
				Name string          `json:"name"`
				Pass bool            `json:"pass"`
				Info *string         `json:"info"`
				Mesg *string         `json:"mesg"`
				Data json.RawMessage `json:"data"`
			} `json:"config"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, b := range v.Backends {
		if b.Backend != "kvm" {
			continue
		}
		seen = true
		if !b.Pass || len(b.Config) != 3 || b.Config[0].Name != "QEMU" || b.Config[0].Info == nil || !strings.HasPrefix(*b.Config[0].Info, "7.2.22 ") ||
			b.Config[0].Mesg != nil || b.Config[1].Name != "Keep image" || b.Config[2].Name != "Configured" || b.Config[2].Info != nil {
			t.Errorf("kvm JSON %s", out.String())
		}
	}
	if !seen {
		t.Error("no kvm backend in JSON")
	}
}

func TestMicroVMKVMNotReadWrite(t *testing.T) {
	fsys := rwFS{fstest.MapFS{"dev/kvm": charDev}, fs.ErrPermission}
	b := find(t, Collect("v", Env{FS: fsys}), "kvm")
	if d := b.Data[0]; d.Pass || !strings.Contains(d.Mesg, "cannot open /dev/kvm read-write") || !strings.Contains(d.Mesg, "group") {
		t.Errorf("/dev/kvm without access: %+v", d)
	}
	b = find(t, Collect("v", Env{FS: rwFS{fsys.MapFS, nil}}), "kvm")
	if d := b.Data[0]; !d.Pass {
		t.Errorf("/dev/kvm with access: %+v", d)
	}
}

// TestMicroVMParavirtualKVM: a /dev/kvm served by kvm_pvm (a VM without
// nested virtualization) fails the kvm backend's driver row with the
// reason; with kvm_amd loaded it passes.
func TestMicroVMParavirtualKVM(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("KVM's vendor modules are x86-64's")
	}
	fsys := rwFS{fstest.MapFS{"dev/kvm": charDev, "sys/module/kvm/parameters/halt_poll_ns": {}, "sys/module/kvm_pvm/parameters/nx_huge_pages": {}}, nil}
	b := find(t, Collect("v", Env{FS: fsys}), "kvm")
	if d := b.Data[0]; d.Pass || !strings.Contains(d.Mesg, "/dev/kvm is served by kvm_pvm, not by kvm_intel or kvm_amd") {
		t.Errorf("/dev/kvm of kvm_pvm: %+v", d)
	}
	fsys.MapFS["sys/module/kvm_amd/parameters/nested"] = &fstest.MapFile{}
	if d := find(t, Collect("v", Env{FS: fsys}), "kvm").Data[0]; !d.Pass {
		t.Errorf("/dev/kvm with kvm_amd loaded: %+v", d)
	}
}

// rwFS is a file system whose read-write check answers err, as
// vmm.HostFS's does after opening the file.
type rwFS struct {
	fstest.MapFS
	err error
}

func (f rwFS) CheckReadWrite(string) error { return f.err }

func TestMicroVMTCG(t *testing.T) {
	env := Env{FS: fstest.MapFS{}, Getenv: getenv("ENARX_VM_ACCEL", "tcg"), QEMU: fakeQEMU(t, "7.2.22", true, nil),
		KeepImage: keepImage(t), Registered: registered("kvm", "sev", "tdx-vm")}
	r := Collect("v", env)
	kvm := find(t, r, "kvm")
	d := kvm.Data[0]
	if !d.Pass || d.Info != "/dev/kvm absent: ENARX_VM_ACCEL=tcg emulates the CPU (tests only, not isolated by hardware)" || !strings.Contains(d.Mesg, "only when named") {
		t.Errorf("kvm driver row under tcg: %+v", d)
	}
	if !kvm.Pass() {
		t.Errorf("kvm fails under ENARX_VM_ACCEL=tcg with QEMU and an image: %+v", kvm)
	}
	// Emulation is for the kvm backend only.
	for _, name := range []string{"sev", "tdx-vm"} {
		for _, d := range find(t, r, name).Data {
			if d.Info == "/dev/kvm" && d.Pass {
				t.Errorf("%s: /dev/kvm row passes under tcg without /dev/kvm", name)
			}
		}
	}
	// With /dev/kvm, tcg still emulates: the row says KVM goes unused.
	env.FS = fstest.MapFS{"dev/kvm": charDev}
	if d := find(t, Collect("v", env), "kvm").Data[0]; !d.Pass || !strings.HasPrefix(d.Info, "/dev/kvm unused: ENARX_VM_ACCEL=tcg") || d.Mesg != "" {
		t.Errorf("kvm driver row under tcg with /dev/kvm: %+v", d)
	}
	// Any other value is no request for emulation.
	env.FS, env.Getenv = fstest.MapFS{}, getenv("ENARX_VM_ACCEL", "kvm")
	if d := find(t, Collect("v", env), "kvm").Data[0]; d.Pass {
		t.Errorf("ENARX_VM_ACCEL=kvm without /dev/kvm passes: %+v", d)
	}
}

func TestMicroVMSNPHost(t *testing.T) {
	fsys := fstest.MapFS{
		"dev/sev": charDev, "dev/kvm": charDev,
		"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("Y\n")},
		"usr/share/ovmf/OVMF.amdsev.fd":         amdSevOVMF,
		"var/cache/amd-sev/crls.der":            {},
		"var/cache/amd-sev/vcek-0123-1-2-3-4":   {},
	}
	env := Env{FS: fsys, CPUID: snpCPU().cpuid, QEMU: fakeQEMU(t, "9.2.0", true, nil), KeepImage: keepImage(t),
		Registered: registered("kvm", "sev", "tdx-vm")}
	r := Collect("v", env)
	sev := find(t, r, "sev")
	if !sev.Pass() {
		t.Fatalf("sev fails on an SNP host with QEMU 9.2, AmdSev firmware and an image: %+v", sev)
	}
	if d := row(t, sev.Config, "SEV-SNP firmware"); d.Info != "/usr/share/ovmf/OVMF.amdsev.fd" {
		t.Errorf("firmware row %+v", d)
	}
	if d := row(t, sev.Config, "Attestation collateral", "AMD CRL cache file"); !d.Pass {
		t.Errorf("CRL row %+v", d)
	}
	if !find(t, r, "kvm").Pass() || find(t, r, "tdx-vm").Pass() {
		t.Error("an SNP host runs kvm Keeps and no tdx-vm Keeps")
	}

	// The collateral is for Keeps that name a Steward: without it the
	// backend still starts Keeps, and the rows say what is missing.
	delete(fsys, "var/cache/amd-sev/crls.der")
	delete(fsys, "var/cache/amd-sev/vcek-0123-1-2-3-4")
	sev = find(t, Collect("v", env), "sev")
	if d := row(t, sev.Config, "Attestation collateral", "AMD CRL cache file"); d.Pass || !strings.Contains(d.Mesg, "enarx platform snp fetch") || !sev.Pass() {
		t.Errorf("without collateral: %+v", sev.Config)
	}
	// $ENARX_SNP_CACHE is where the backend reads it.
	env.SNPCacheDir = "/srv/snp"
	fsys["srv/snp/crls.der"] = &fstest.MapFile{}
	if d := row(t, find(t, Collect("v", env), "sev").Config, "Attestation collateral", "AMD CRL cache file"); !d.Pass || d.Info != "/srv/snp/crls.der" {
		t.Errorf("CRL row with a cache directory: %+v", d)
	}

	// OVMF without the kernel hashes area cannot measure the Keep image.
	fsys["usr/share/ovmf/OVMF.amdsev.fd"] = plainOVMF
	sev = find(t, Collect("v", env), "sev")
	if d := row(t, sev.Config, "SEV-SNP firmware"); d.Pass || !strings.Contains(d.Mesg, "not an AmdSev OVMF build") || sev.Pass() {
		t.Errorf("plain OVMF: %+v", d)
	}
	// $ENARX_SNP_FIRMWARE reaches the same search the backend makes.
	fsys["srv/amdsev.fd"] = amdSevOVMF
	env.Getenv = getenv("ENARX_SNP_FIRMWARE", "/srv/amdsev.fd")
	if d := row(t, find(t, Collect("v", env), "sev").Config, "SEV-SNP firmware"); !d.Pass || d.Info != "/srv/amdsev.fd" {
		t.Errorf("ENARX_SNP_FIRMWARE: %+v", d)
	}

	// QEMU 9.0 is one release short.
	env.QEMU = fakeQEMU(t, "9.0.2", true, nil)
	if d := row(t, find(t, Collect("v", env), "sev").Config, "QEMU 9.1 or newer"); d.Pass || !strings.Contains(d.Mesg, "QEMU 9.0.2") {
		t.Errorf("QEMU 9.0: %+v", d)
	}
	// A configured backend's own verdict is part of the report.
	env.QEMU = fakeQEMU(t, "9.2.0", true, nil)
	env.Registered = []backend.Backend{fakeBackend{name: "sev", conf: errors.New("the backend says no")}}
	sev = find(t, Collect("v", env), "sev")
	if d := row(t, sev.Config, "Configured"); d.Pass || d.Info != "the backend says no" || sev.Pass() {
		t.Errorf("Configured row %+v", d)
	}
}

func TestMicroVMTDXHost(t *testing.T) {
	cpu := newCPU("GenuineIntel", "INTEL(R) XEON(R) PLATINUM 8580")
	fsys := fstest.MapFS{
		"dev/kvm":                               charDev,
		"sys/module/kvm_intel/parameters/tdx":   {Data: []byte("Y\n")},
		"usr/share/edk2/ovmf/OVMF.inteltdx.fd":  tdvf,
		"var/cache/intel-tdx/collateral.der":    {},
		"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("Y\n")}, // no /dev/sev: not an SNP host
	}
	env := Env{FS: fsys, CPUID: cpu.cpuid, QEMU: fakeQEMU(t, "10.1.0", false, nil), KeepImage: keepImage(t),
		Registered: registered("kvm", "sev", "tdx-vm")}
	r := Collect("v", env)
	tdx := find(t, r, "tdx-vm")
	if !tdx.Pass() {
		t.Fatalf("tdx-vm fails on a TDX host with QEMU 10.1, TDVF and an image: %+v", tdx)
	}
	if d := row(t, tdx.Config, "TDX firmware"); d.Info != "/usr/share/edk2/ovmf/OVMF.inteltdx.fd" {
		t.Errorf("firmware row %+v", d)
	}
	if d := row(t, tdx.Config, "Attestation collateral", "TDX collateral cache file"); !d.Pass {
		t.Errorf("collateral row %+v", d)
	}
	// A QEMU without seccomp still launches Keeps; the row says so.
	if d := row(t, tdx.Config, "QEMU 10.1 or newer", "Seccomp sandbox (-sandbox)"); d.Pass || !strings.Contains(d.Mesg, "libseccomp") {
		t.Errorf("sandbox row %+v", d)
	}
	if sev := find(t, r, "sev"); sev.Pass() {
		t.Errorf("sev passes on a TDX host: %+v", sev)
	}
	// tdx=N, an AMD CPU, a release candidate of 10.1: each fails.
	fsys["sys/module/kvm_intel/parameters/tdx"] = &fstest.MapFile{Data: []byte("N\n")}
	if d := row(t, find(t, Collect("v", env), "tdx-vm").Data, "TDX enabled in host kernel"); d.Pass || !strings.Contains(d.Mesg, "tdx=1") {
		t.Errorf("tdx=N: %+v", d)
	}
	fsys["sys/module/kvm_intel/parameters/tdx"] = &fstest.MapFile{Data: []byte("Y\n")}
	env.CPUID = snpCPU().cpuid
	if d := row(t, find(t, Collect("v", env), "tdx-vm").Data, "CPU"); d.Pass || d.Mesg == "" {
		t.Errorf("AMD CPU: %+v", d)
	}
	env.CPUID = cpu.cpuid
	env.QEMU = fakeQEMU(t, "10.0.90", true, nil)
	if d := row(t, find(t, Collect("v", env), "tdx-vm").Config, "QEMU 10.1 or newer"); d.Pass || !strings.Contains(d.Mesg, "10.0.90") {
		t.Errorf("QEMU 10.1 release candidate: %+v", d)
	}
}
