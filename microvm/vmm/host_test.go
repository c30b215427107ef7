package vmm

import (
	"errors"
	"io/fs"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

const charDev = fs.ModeDevice | fs.ModeCharDevice | 0o660

// fakeRoot is a host root whose files open read-write unless listed in
// denied.
type fakeRoot struct {
	fstest.MapFS
	denied map[string]error
}

func (r fakeRoot) CheckReadWrite(name string) error {
	if err := r.denied[name]; err != nil {
		return &fs.PathError{Op: "open", Path: "/" + name, Err: err}
	}
	return nil
}

func TestKVMAvailable(t *testing.T) {
	kvm := fstest.MapFS{"dev/kvm": {Mode: charDev}}
	cases := []struct {
		name string
		fsys fs.FS
		want string
	}{
		{"OK", fakeRoot{MapFS: kvm}, ""},
		{"OKWithoutRWCheck", kvm, ""},
		{"Missing", fakeRoot{MapFS: fstest.MapFS{}}, "/dev/kvm is missing: load the kvm module"},
		{"NotCharDev", fakeRoot{MapFS: fstest.MapFS{"dev/kvm": {Data: []byte("x")}}}, "/dev/kvm is not a character device"},
		{"Permission", fakeRoot{MapFS: kvm, denied: map[string]error{"dev/kvm": fs.ErrPermission}}, "cannot open /dev/kvm read-write: open /dev/kvm: permission denied; add the user to the group"},
		{"Vendor", fakeRoot{MapFS: fstest.MapFS{"dev/kvm": {Mode: charDev}, "sys/module/kvm_amd/parameters/nested": {Data: []byte("1\n")}}}, ""},
		{"VendorBuiltIn", fakeRoot{MapFS: fstest.MapFS{"dev/kvm": {Mode: charDev}, "sys/module/kvm_intel": {Mode: fs.ModeDir | 0o755}, "sys/module/kvm": {Mode: fs.ModeDir | 0o755}}}, ""},
		// kvm_pvm (Pagetable-based VMs) serves /dev/kvm in VMs without
		// nested virtualization; QEMU aborted on an ordinary kernel.
		{"Paravirtual", fakeRoot{MapFS: fstest.MapFS{"dev/kvm": {Mode: charDev}, "sys/module/kvm/parameters/x": {}, "sys/module/kvm_pvm/parameters/y": {}}},
			"/dev/kvm is served by kvm_pvm, not by kvm_intel or kvm_amd: it does not run ordinary x86-64 guests; the Keep image's kernel needs hardware virtualization"},
		{"NoVendor", fakeRoot{MapFS: fstest.MapFS{"dev/kvm": {Mode: charDev}, "sys/module/kvm/parameters/x": {}}}, "/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded: load the kvm module"},
		{"OtherError", fakeRoot{MapFS: kvm, denied: map[string]error{"dev/kvm": errors.New("device busy")}}, "cannot open /dev/kvm read-write: open /dev/kvm: device busy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if runtime.GOARCH != "amd64" && (c.name == "Paravirtual" || c.name == "NoVendor") {
				t.Skip("KVM's vendor modules are x86-64's")
			}
			err := KVMAvailable(c.fsys)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("KVMAvailable = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParams(t *testing.T) {
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		check func(fs.FS) error
		want  string
	}{
		{"SNP-Y", fstest.MapFS{"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("Y\n")}}, SNPEnabled, ""},
		{"SNP-1", fstest.MapFS{"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("1")}}, SNPEnabled, ""},
		{"SNP-N", fstest.MapFS{"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("N\n")}}, SNPEnabled, `sev_snp is "N", not Y: use a host kernel with SEV-SNP`},
		{"SNP-missing", fstest.MapFS{}, SNPEnabled, "kvm_amd is not loaded"},
		{"SNP-empty", fstest.MapFS{"sys/module/kvm_amd/parameters/sev_snp": {}}, SNPEnabled, `sev_snp is "", not Y`},
		{"TDX-Y", fstest.MapFS{"sys/module/kvm_intel/parameters/tdx": {Data: []byte("Y\n")}}, TDXEnabled, ""},
		{"TDX-N", fstest.MapFS{"sys/module/kvm_intel/parameters/tdx": {Data: []byte("N\n")}}, TDXEnabled, "load kvm_intel with tdx=1"},
		{"TDX-long", fstest.MapFS{"sys/module/kvm_intel/parameters/tdx": {Data: []byte(strings.Repeat("Y", 1000))}}, TDXEnabled, "not Y"},
		{"SEV", fstest.MapFS{"dev/sev": {Mode: charDev}}, SEVDevice, ""},
		{"SEV-missing", fstest.MapFS{}, SEVDevice, "/dev/sev is missing: load the ccp module"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.check(c.files)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestHostReady(t *testing.T) {
	snpHost := fakeRoot{MapFS: fstest.MapFS{
		"dev/kvm": {Mode: charDev}, "dev/sev": {Mode: charDev},
		"sys/module/kvm_amd/parameters/sev_snp": {Data: []byte("Y\n")},
	}}
	if err := SNPHost(snpHost); err != nil {
		t.Errorf("SNPHost = %v", err)
	}
	if err := TDXHost(snpHost); err == nil || !strings.Contains(err.Error(), TDXParamPath) {
		t.Errorf("TDXHost on an SNP host = %v", err)
	}
	noKVM := fakeRoot{MapFS: fstest.MapFS{"sys/module/kvm_intel/parameters/tdx": {Data: []byte("Y\n")}}}
	if err := TDXHost(noKVM); err == nil || !strings.Contains(err.Error(), "/dev/kvm is missing") {
		t.Errorf("TDXHost without KVM = %v", err)
	}
}

// TestHostFS reads this machine: whatever it has, the checks answer
// without panicking, and /dev/kvm's answer agrees with the device file.
func TestHostFS(t *testing.T) {
	root := HostFS()
	err := KVMAvailable(root)
	if _, statErr := fs.Stat(root, "dev/kvm"); statErr != nil && (err == nil || !strings.Contains(err.Error(), "missing")) {
		t.Errorf("no /dev/kvm here, yet KVMAvailable = %v", err)
	}
	vendor := false
	for _, m := range kvmVendorModules {
		if _, statErr := fs.Stat(root, "sys/module/"+m); statErr == nil {
			vendor = true
		}
	}
	if !vendor && err == nil && runtime.GOARCH == "amd64" {
		if _, statErr := fs.Stat(root, "sys/module"); statErr == nil {
			t.Errorf("neither of %v is loaded here, yet KVMAvailable = nil", kvmVendorModules)
		}
	}
	t.Logf("KVM: %v; SNP host: %v; TDX host: %v", err, SNPHost(root), TDXHost(root))
}
