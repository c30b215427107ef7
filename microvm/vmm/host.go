package vmm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// The host capability checks read the machine through an fs.FS rooted at
// "/" (paths are given without the leading slash, as fs.FS wants). Opening a
// device read-write is not something fs.FS can express, so a file system
// that can do it implements ReadWriteChecker; HostFS does, and a test wraps
// an fstest.MapFS.

// ReadWriteChecker is implemented by file systems that can tell whether a
// file opens read-write.
type ReadWriteChecker interface {
	// CheckReadWrite opens name read-write and closes it again.
	CheckReadWrite(name string) error
}

type hostFS struct{ fs.FS }

func (hostFS) CheckReadWrite(name string) error {
	f, err := os.OpenFile("/"+name, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// HostFS is this machine's root file system for the checks below.
func HostFS() fs.FS { return hostFS{os.DirFS("/")} }

// Paths the checks read.
const (
	KVMDevice     = "/dev/kvm"
	SEVDevicePath = "/dev/sev"
	SNPParamPath  = "/sys/module/kvm_amd/parameters/sev_snp"
	TDXParamPath  = "/sys/module/kvm_intel/parameters/tdx"
	// ModulesPath lists the kernel's modules, loaded and built in (those
	// with parameters, which KVM's vendor modules have).
	ModulesPath = "/sys/module"
)

// kvmVendorModules are the KVM modules that run guests on the CPU's
// hardware virtualization (VT-x, AMD-V): a Keep image's kernel is an
// ordinary x86-64 kernel and boots only under one of them.
var kvmVendorModules = []string{"kvm_intel", "kvm_amd"}

// What to do when a check fails.
const (
	kvmModuleHint = "load the kvm module and kvm_intel or kvm_amd, and enable virtualization (VT-x/AMD-V) in the firmware; inside a VM, the hypervisor must offer nested virtualization"
	kvmVendorHint = "the Keep image's kernel needs hardware virtualization (VT-x/AMD-V); inside a VM, the hypervisor must offer it nested"
	kvmAccessHint = "add the user to the group that owns /dev/kvm (usually kvm) and log in again"
	sevModuleHint = "load the ccp module on a host with SEV enabled in the firmware"
	snpParamHint  = "use a host kernel with SEV-SNP host support (Linux 6.11 or newer) and load kvm_amd with sev_snp=1; the firmware must enable SNP and SEV-ES ASIDs"
	tdxParamHint  = "use a host kernel with TDX host support (Linux 6.16 or newer), enable TDX in the firmware and load kvm_intel with tdx=1"
)

func rel(path string) string { return strings.TrimPrefix(path, "/") }

func checkCharDev(fsys fs.FS, path, hint string) error {
	st, err := fs.Stat(fsys, rel(path))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: %s", path, hint)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode()&fs.ModeCharDevice == 0 {
		return fmt.Errorf("%s is not a character device: %s", path, hint)
	}
	return nil
}

// KVMAvailable returns nil when /dev/kvm exists, is served by one of
// kvmVendorModules and opens read-write (the latter only when fsys is a
// ReadWriteChecker), else an error that says what to do.
//
// The module check matters inside VMs: a paravirtual KVM such as kvm_pvm
// (Pagetable-based VMs) provides /dev/kvm without VT-x/AMD-V and runs only
// guest kernels built for it; QEMU then aborts on the first MSR it sets.
// Where the module list cannot be read (no sysfs), the device decides.
func KVMAvailable(fsys fs.FS) error {
	if err := checkCharDev(fsys, KVMDevice, kvmModuleHint); err != nil {
		return err
	}
	if err := kvmVendor(fsys); err != nil {
		return err
	}
	if rw, ok := fsys.(ReadWriteChecker); ok {
		if err := rw.CheckReadWrite(rel(KVMDevice)); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("cannot open %s read-write: %w; %s", KVMDevice, err, kvmAccessHint)
			}
			return fmt.Errorf("cannot open %s read-write: %w", KVMDevice, err)
		}
	}
	return nil
}

// kvmVendor returns nil when one of kvmVendorModules is loaded or built in,
// or when the module list is not there to tell. Other architectures have
// no vendor module (the microVM backends refuse them anyway).
func kvmVendor(fsys fs.FS) error {
	if runtime.GOARCH != "amd64" {
		return nil
	}
	ents, err := fs.ReadDir(fsys, rel(ModulesPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ModulesPath, err)
	}
	var others []string
	for _, e := range ents {
		name := e.Name()
		for _, v := range kvmVendorModules {
			if name == v {
				return nil
			}
		}
		if strings.HasPrefix(name, "kvm_") {
			others = append(others, name)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%s is served by %s, not by %s: it does not run ordinary x86-64 guests; %s",
			KVMDevice, strings.Join(others, ", "), strings.Join(kvmVendorModules, " or "), kvmVendorHint)
	}
	return fmt.Errorf("%s exists but neither %s is loaded: %s", KVMDevice, strings.Join(kvmVendorModules, " nor "), kvmModuleHint)
}

// SEVDevice returns nil when /dev/sev (the AMD secure processor) exists.
func SEVDevice(fsys fs.FS) error { return checkCharDev(fsys, SEVDevicePath, sevModuleHint) }

// SNPEnabled returns nil when kvm_amd runs with SEV-SNP (sev_snp is Y or 1).
func SNPEnabled(fsys fs.FS) error { return boolParam(fsys, SNPParamPath, "kvm_amd", snpParamHint) }

// TDXEnabled returns nil when kvm_intel runs with TDX (tdx is Y or 1).
func TDXEnabled(fsys fs.FS) error { return boolParam(fsys, TDXParamPath, "kvm_intel", tdxParamHint) }

// SNPHost returns nil when the host can start SEV-SNP VMs: KVM, /dev/sev and
// kvm_amd's sev_snp; the first missing part's error otherwise.
func SNPHost(fsys fs.FS) error {
	return firstErr(KVMAvailable(fsys), SEVDevice(fsys), SNPEnabled(fsys))
}

// TDXHost returns nil when the host can start TDX VMs: KVM and kvm_intel's
// tdx.
func TDXHost(fsys fs.FS) error {
	return firstErr(KVMAvailable(fsys), TDXEnabled(fsys))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxParam bounds what is read of a module parameter file.
const maxParam = 64

func boolParam(fsys fs.FS, path, module, hint string) error {
	f, err := fsys.Open(rel(path))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing (%s is not loaded or has no such parameter): %s", path, module, hint)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, maxParam)
	n, err := f.Read(b)
	if n == 0 && err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	v := strings.TrimSpace(string(b[:n]))
	switch v {
	case "Y", "y", "1":
		return nil
	}
	return fmt.Errorf("%s is %q, not Y: %s", path, v, hint)
}
