package platform

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/sandbox"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	"github.com/enarx-go/enarx/evidence/tsm"
)

// charDev is a character device (what the host checks want of /dev files).
var charDev = &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o660}

// fakeCPU is a CPUID table: leaf<<32|sub -> eax, ebx, ecx, edx.
type fakeCPU map[uint64][4]uint32

func (f fakeCPU) cpuid(leaf, sub uint32) (a, b, c, d uint32) {
	r := f[uint64(leaf)<<32|uint64(sub)]
	return r[0], r[1], r[2], r[3]
}

func le(s string) uint32 { return binary.LittleEndian.Uint32([]byte(s)) }

func newCPU(vendor, brand string) fakeCPU {
	f := fakeCPU{0: {0x20, le(vendor[0:4]), le(vendor[8:12]), le(vendor[4:8])}}
	f[0x80000000<<32] = [4]uint32{0x80000020}
	b := []byte(brand + strings.Repeat("\x00", 48-len(brand)))
	for i := 0; i < 3; i++ {
		var r [4]uint32
		for j := range r {
			r[j] = binary.LittleEndian.Uint32(b[i*16+j*4:])
		}
		f[uint64(0x80000002+i)<<32] = r
	}
	return f
}

type fakeBackend struct {
	name string
	conf error
}

func (f fakeBackend) Name() string                                    { return f.name }
func (fakeBackend) Protection() backend.Protection                    { return backend.ProtectionTEE }
func (fakeBackend) Available() bool                                   { return true }
func (f fakeBackend) Configured() error                               { return f.conf }
func (fakeBackend) Run(context.Context, *backend.Launch) (int, error) { return 1, errors.New("fake") }

func allSandbox() []sandbox.Capability {
	return []sandbox.Capability{{Name: "Seccomp filters", OK: true}, {Name: "User namespaces", OK: true}, {Name: "Landlock", OK: true, Info: "ABI 7"}}
}

func find(t *testing.T, r *Report, name string) Backend {
	t.Helper()
	for _, b := range r.Backends {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no backend %q", name)
	return Backend{}
}

func row(t *testing.T, ds []Datum, path ...string) Datum {
	t.Helper()
	for _, d := range ds {
		if d.Name == path[0] {
			if len(path) == 1 {
				return d
			}
			return row(t, d.Data, path[1:]...)
		}
	}
	t.Fatalf("no row %q", path)
	return Datum{}
}

func TestBareMachine(t *testing.T) {
	r := Collect("1.2.3", Env{FS: fstest.MapFS{}, SystemInfo: "Test 1.0", Sandbox: allSandbox})
	want := map[string]bool{"sgx": false, "sev": false, "kvm": false, "snp": false, "tdx": false, "sandbox": true, "nil": true}
	for _, b := range r.Backends {
		if w, ok := want[b.Name]; ok && b.Pass() != w {
			t.Errorf("backend %s pass = %v, want %v", b.Name, b.Pass(), w)
		}
	}
	var out bytes.Buffer
	r.WriteText(&out, Colors{})
	s := out.String()
	for _, w := range []string{"Enarx version 1.2.3\nSystem Info: Test 1.0\n", "✗ Backend: sgx\n  Protection from this host: hardware (a TEE: memory the host can neither read nor change, proven by attestation)\n  ✗ Driver: /dev/sgx_enclave\n",
		"  The Intel CRL cache is filled by upstream Enarx's `enarx platform sgx cache-crl`; this build has no SGX backend\n", "✔ Backend: nil\n", "✗ CPU: no CPUID"} {
		if !strings.Contains(s, w) {
			t.Errorf("text lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "\x1b[") {
		t.Error("colour codes without a TTY")
	}
	out.Reset()
	r.WriteText(&out, TTYColors)
	if !strings.Contains(out.String(), "\x1b[32m✔\x1b[0m Backend: nil") {
		t.Errorf("no colour on a TTY:\n%s", out.String())
	}
}

// TestProtectionRows: every backend says whether it protects the workload
// from the host, and only the TEEs say yes.
func TestProtectionRows(t *testing.T) {
	r := Collect("v", Env{FS: fstest.MapFS{}, Sandbox: allSandbox, Registered: []backend.Backend{fakeBackend{name: "other"}, backend.Emulated{ID: "x-emulated"}}})
	want := map[string]bool{"sgx": true, "sev": true, "tdx-vm": true, "snp": true, "tdx": true, "other": true,
		"kvm": false, "sandbox": false, "nil": false}
	for name, fromHost := range want {
		p := find(t, r, name).Protection
		if p.FromHost != fromHost || p.Info == "" || strings.HasPrefix(p.Info, "none") == fromHost {
			t.Errorf("%s: protection %+v, want from host %v", name, p, fromHost)
		}
	}
	for _, b := range r.Backends {
		if b.Protection.Info == "" {
			t.Errorf("%s has no protection row", b.Name)
		}
	}
	var out bytes.Buffer
	r.WriteText(&out, Colors{})
	for _, w := range []string{"✔ Backend: nil\n  Protection from this host: none (the workload runs inside the enarx process",
		"Backend: kvm\n  Protection from this host: none (a VM of its own", "Backend: sev\n  Protection from this host: hardware"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Backends []struct {
			Backend    string `json:"backend"`
			Protection struct {
				Level    string `json:"level"`
				FromHost bool   `json:"from_host"`
			} `json:"protection"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	levels := map[string]string{}
	for _, b := range v.Backends {
		levels[b.Backend] = b.Protection.Level
		if b.Protection.FromHost != want[b.Backend] {
			t.Errorf("JSON %s from_host = %v", b.Backend, b.Protection.FromHost)
		}
	}
	if levels["sev"] != "tee" || levels["kvm"] != "vm" || levels["sandbox"] != "sandbox" || levels["nil"] != "none" || levels["x-emulated"] != "emulated" {
		t.Errorf("JSON levels %v", levels)
	}
}

func TestSGXMachine(t *testing.T) {
	cpu := newCPU("GenuineIntel", "Intel(R) Xeon(R) Gold 6338")
	cpu[7<<32] = [4]uint32{0, 1<<2 | 1<<0, 1 << 30, 0}
	cpu[1<<32] = [4]uint32{0, 0, 1 << 30, 0}
	cpu[0x12<<32] = [4]uint32{3, 0, 0, 36<<8 | 31}
	cpu[0x12<<32|1] = [4]uint32{0x36, 0, 0x1f, 0}
	cpu[0x12<<32|2] = [4]uint32{1, 0, 0x40000000, 0}
	fsys := fstest.MapFS{
		"dev/sgx_enclave":               {},
		"var/cache/intel-sgx/crls.der":  {},
		"var/cache/intel-sgx/fmspc.txt": {Data: []byte("00606A000000")},
		"var/cache/intel-sgx/tcb.der":   {},
		"var/run/aesmd/aesm.socket":     {},
	}
	b := find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "sgx")
	if !allPass(b.Data) {
		t.Errorf("SGX machine data rows fail: %+v", b.Data)
	}
	if d := row(t, b.Data, "CPU"); d.Info != "Intel(R) Xeon(R) Gold 6338 | GenuineIntel" {
		t.Errorf("CPU info %q", d.Info)
	}
	if d := row(t, b.Data, "CPU", "SGX Support", "EPC Size"); d.Info != "1073741824 bytes" || !d.Pass {
		t.Errorf("EPC %+v", d)
	}
	if d := row(t, b.Data, "CPU", "SGX Support", "Max Size (64-bit)"); d.Info != "2^36 bytes" {
		t.Errorf("max size %+v", d)
	}
	if d := row(t, b.Config, "AESM Daemon Socket"); !d.Pass {
		t.Errorf("aesm %+v", d)
	}
	// Without SGX2 the machine is not enough.
	cpu[0x12<<32] = [4]uint32{1, 0, 0, 36<<8 | 31}
	b = find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "sgx")
	if d := row(t, b.Data, "CPU", "SGX Support", "Version 2"); d.Pass || d.Mesg == "" {
		t.Errorf("SGX1-only: %+v", d)
	}
	if allPass(b.Data) {
		t.Error("SGX1-only machine passes")
	}
}

func TestSEVHostDataRows(t *testing.T) {
	cpu := newCPU("AuthenticAMD", "AMD EPYC 7763 64-Core Processor")
	cpu[0x8000001f<<32] = [4]uint32{1<<0 | 1<<1 | 1<<2 | 1<<4, 5<<6 | 51, 509, 1}
	fsys := fstest.MapFS{
		"dev/sev": charDev, "dev/kvm": charDev,
		"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("Y\n")},
	}
	b := find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "sev")
	if !allPass(b.Data) {
		t.Errorf("SEV host data rows fail: %+v", b.Data)
	}
	if d := row(t, b.Data, "CPU", "Secure Memory Encryption (SME)", "C-bit location in page table entry"); d.Info != "51" {
		t.Errorf("C-bit %+v", d)
	}
	fsys["sys/module/kvm_amd/parameters/sev_snp"] = &fstest.MapFile{Data: []byte("N\n")}
	b = find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "sev")
	if d := row(t, b.Data, "SEV-SNP enabled in host kernel"); d.Pass || !strings.Contains(d.Mesg, "sev_snp=1") {
		t.Errorf("sev_snp=N: %+v", d)
	}
	// A regular file where the device should be is not the device.
	fsys["dev/sev"] = &fstest.MapFile{}
	b = find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "sev")
	if d := b.Data[0]; d.Name != "Driver" || d.Info != "/dev/sev" || d.Pass || !strings.Contains(d.Mesg, "not a character device") {
		t.Errorf("/dev/sev as a regular file: %+v", d)
	}
}

func TestKVMHostCPURows(t *testing.T) {
	cpu := newCPU("GenuineIntel", "Intel(R) Core(TM)")
	cpu[7<<32] = [4]uint32{0, 1, 0, 0}
	cpu[1<<32] = [4]uint32{0, 0, 1 << 30, 0}
	fsys := fstest.MapFS{"dev/kvm": charDev}
	b := find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "kvm")
	if !allPass(b.Data) {
		t.Errorf("KVM data rows fail: %+v", b.Data)
	}
	// The microVM backend needs no CPU feature: the rows describe what
	// the Keep's VM gets, and a missing one is no verdict.
	cpu[1<<32] = [4]uint32{}
	b = find(t, Collect("v", Env{FS: fsys, CPUID: cpu.cpuid}), "kvm")
	if d := row(t, b.Data, "CPU", "RDRAND instruction"); d.Pass {
		t.Errorf("no RDRAND passes")
	}
	if !allPass(b.Data) {
		t.Errorf("a missing CPU feature fails the kvm backend: %+v", b.Data)
	}
}

// tsmProvider is configfs-tsm reporting provider p.
func tsmProvider(p string) func() (string, error) { return func() (string, error) { return p, nil } }

var withTSM = fstest.MapFS{"sys/kernel/config/tsm/report": {Mode: fs.ModeDir | 0o755}}

func TestSNPGuestDevice(t *testing.T) {
	env := Env{FS: fstest.MapFS{"dev/sev-guest": charDev}, Registered: []backend.Backend{fakeBackend{name: "snp"}}}
	r := Collect("v", env)
	if b := find(t, r, "snp"); !b.Pass() {
		t.Errorf("SNP guest with /dev/sev-guest fails: %+v", b)
	}
	if b := find(t, r, "tdx"); b.Pass() {
		t.Error("TDX passes in an SNP guest")
	}
	env.Registered = []backend.Backend{fakeBackend{name: "snp", conf: errors.New("no AMD CRLs cached")}}
	b := find(t, Collect("v", env), "snp")
	if d := row(t, b.Config, "Configured"); d.Pass || d.Info != "no AMD CRLs cached" || b.Pass() {
		t.Errorf("unconfigured SNP: %+v", b)
	}
}

func TestSNPGuestConfigfsTSM(t *testing.T) {
	reg := []backend.Backend{fakeBackend{name: "snp"}, fakeBackend{name: "tdx"}}
	r := Collect("v", Env{FS: withTSM, TSMProvider: tsmProvider("sev_guest"), Registered: reg})
	if b := find(t, r, "snp"); !b.Pass() {
		t.Errorf("SNP guest with configfs-tsm (sev_guest) fails: %+v", b)
	}
	if b := find(t, r, "tdx"); b.Pass() {
		t.Errorf("TDX passes in an SNP guest: %+v", b)
	}
	// configfs-tsm is in every confidential guest: the snp backend needs
	// its sev_guest provider, and so does the row.
	r = Collect("v", Env{FS: withTSM, TSMProvider: tsmProvider("tdx_guest"), Registered: reg})
	b := find(t, r, "snp")
	d := row(t, b.Data, "SEV-SNP guest attestation interface")
	if d.Pass || b.Pass() || !strings.Contains(d.Mesg, `"tdx_guest", not "sev_guest"`) {
		t.Errorf("SNP row in a TDX guest: %+v", d)
	}
	if d := row(t, b.Data, "SEV-SNP guest attestation interface", "configfs-tsm reports"); d.Pass || !strings.Contains(d.Info, "tdx_guest") {
		t.Errorf("configfs-tsm row in a TDX guest: %+v", d)
	}
	// The row is the backend's own check.
	if err := snpbackend.GuestCheck(withTSM, tsmProvider("tdx_guest")); err == nil || err.Error() != d.Mesg {
		t.Errorf("row %q, backend check %v", d.Mesg, err)
	}
	// A provider that cannot be read (no privilege to create a report).
	r = Collect("v", Env{FS: withTSM, TSMProvider: func() (string, error) { return "", fmt.Errorf("%w: permission denied", tsm.ErrUnavailable) }, Registered: reg})
	if d := row(t, find(t, r, "snp").Data, "SEV-SNP guest attestation interface"); d.Pass || !strings.Contains(d.Mesg, "permission denied") {
		t.Errorf("unreadable provider: %+v", d)
	}
}

func TestTDXGuestConfigfsTSM(t *testing.T) {
	env := Env{FS: withTSM, TSMProvider: tsmProvider("tdx_guest"), Registered: []backend.Backend{fakeBackend{name: "tdx"}}}
	b := find(t, Collect("v", env), "tdx")
	if !b.Pass() {
		t.Errorf("TDX guest with configfs-tsm fails: %+v", b)
	}
	if d := row(t, b.Data, "TDX guest attestation interface", "Guest device"); d.Pass {
		t.Error("device row passes without /dev/tdx_guest")
	}
	if d := row(t, b.Data, "TDX guest attestation interface", "configfs-tsm reports"); !d.Pass || d.Info != "/sys/kernel/config/tsm/report (provider tdx_guest)" {
		t.Errorf("configfs-tsm row %+v", d)
	}
	// Not registered in this build: never passes.
	b = find(t, Collect("v", Env{FS: env.FS, TSMProvider: env.TSMProvider}), "tdx")
	if b.Pass() || !strings.Contains(row(t, b.Config, "Backend in this build").Mesg, "without the tdx backend") {
		t.Errorf("unregistered tdx: %+v", b)
	}
}

func TestSandboxProbes(t *testing.T) {
	env := Env{FS: fstest.MapFS{}, Sandbox: func() []sandbox.Capability {
		return []sandbox.Capability{{Name: "Seccomp filters", OK: true}, {Name: "User namespaces", OK: false, Info: "operation not permitted"}}
	}}
	b := find(t, Collect("v", env), "sandbox")
	if !b.Pass() {
		t.Error("sandbox without user namespaces must still pass (it starts with fewer layers)")
	}
	if d := row(t, b.Data, "Isolation layers", "User namespaces"); d.Pass || !strings.Contains(d.Mesg, "--require-isolation") {
		t.Errorf("user ns row %+v", d)
	}
	env.Sandbox = func() []sandbox.Capability { return []sandbox.Capability{{Name: "Seccomp filters", OK: false}} }
	b = find(t, Collect("v", env), "sandbox")
	if b.Pass() || !strings.Contains(row(t, b.Data, "Seccomp filters").Mesg, "CONFIG_SECCOMP_FILTER") {
		t.Errorf("sandbox without seccomp: %+v", b)
	}
}

func TestJSONHasNoNullStrings(t *testing.T) {
	r := Collect("v", Env{FS: fstest.MapFS{}, Sandbox: allSandbox, Registered: []backend.Backend{fakeBackend{name: "other"}}})
	var out bytes.Buffer
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `"null"`) {
		t.Fatal(`JSON carries the string "null"`)
	}
	var v struct {
		Version  string `json:"version"`
		Backends []struct {
			Backend string `json:"backend"`
			Pass    bool   `json:"pass"`
			Data    []struct {
				Name string  `json:"name"`
				Info *string `json:"info"`
				Mesg *string `json:"mesg"`
			} `json:"data"`
			Config []json.RawMessage `json:"config"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "v" || len(v.Backends) != 9 || v.Backends[0].Backend != "sgx" || v.Backends[3].Backend != "tdx-vm" || v.Backends[8].Backend != "other" {
		t.Fatalf("backends %+v", v.Backends)
	}
	if d := v.Backends[0].Data[0]; d.Name != "Driver" || d.Info == nil || *d.Info != "/dev/sgx_enclave" || d.Mesg == nil {
		t.Errorf("sgx driver row %+v", d)
	}
	if len(v.Backends[0].Config) == 0 {
		t.Error("config rows missing from JSON")
	}
}

func TestHostEnvRuns(t *testing.T) {
	// The real machine: whatever it has, collecting must not fail and
	// nil must pass.
	r := Collect("v", HostEnv())
	if !find(t, r, "nil").Pass() || r.SystemInfo == "" {
		t.Fatalf("host report %+v", r)
	}
}
