package platform

import (
	"fmt"
	"path"

	"github.com/enarx-go/enarx/evidence/snp"
	"github.com/enarx-go/enarx/evidence/tdx"
	"github.com/enarx-go/enarx/microvm/vmm"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
)

// The rows of the microVM backends (kvm, sev, tdx-vm; package
// backend/microvm, which imports this package and so cannot be imported
// here). Each row is one of the checks the backend itself makes: the
// microvm/vmm host checks over Env.FS, Env.QEMU (qemu.Probe), Env.KeepImage
// (image.Locate) and vmm.FindFirmwareIn over Env.FS and Env.Getenv (what
// vmm.FindFirmware does on the host); the Configured row is the registered
// backend's own verdict.

// envVMAccel: "tcg" runs kvm Keeps under QEMU's software emulation.
const envVMAccel = vmm.EnvAccel

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

// checkRow is a row for a check that returns what to do when it fails.
func checkRow(name, info string, err error) Datum {
	d := Datum{Name: name, Pass: err == nil, Info: info}
	if err != nil {
		d.Mesg = err.Error()
	}
	return d
}

// kvmRow is the /dev/kvm row (vmm.KVMAvailable). For the kvm backend
// (tcg), ENARX_VM_ACCEL=tcg makes it pass as the backend does: its Keeps
// then run under software emulation, which isolates nothing by hardware.
func kvmRow(env Env, tcg bool) Datum {
	err := vmm.KVMAvailable(env.FS)
	if !tcg || env.getenv(envVMAccel) != string(vmm.AccelTCG) {
		if err != nil && tcg {
			err = fmt.Errorf("%w; for tests without KVM, %s=tcg emulates the CPU in software", err, envVMAccel)
		}
		return checkRow("Driver", vmm.KVMDevice, err)
	}
	const note = envVMAccel + "=tcg emulates the CPU (tests only, not isolated by hardware)"
	d := Datum{Name: "Driver", Pass: true, Info: vmm.KVMDevice + " unused: " + note}
	switch {
	case err == nil:
	case exists(env, vmm.KVMDevice):
		d.Info = vmm.KVMDevice + " unusable: " + note
		d.Mesg = fmt.Sprintf("%s=tcg: kvm Keeps run under software emulation and only when named (--backend kvm); %v", envVMAccel, err)
	default:
		d.Info = vmm.KVMDevice + " absent: " + note
		d.Mesg = fmt.Sprintf("%s=tcg: kvm Keeps run under software emulation and only when named (--backend kvm)", envVMAccel)
	}
	return d
}

// qemuRow is the QEMU binary and, for a TEE, whether its release can
// launch that TEE's guests (qemu.Info.SupportsSNP, SupportsTDX).
func qemuRow(env Env, tee vmm.TEE) Datum {
	d := Datum{Name: "QEMU"}
	var min qemu.Version
	var supports func(*qemu.Info) bool
	var kind string
	switch tee {
	case vmm.TEESNP:
		min, supports, kind = qemu.MinSNP, (*qemu.Info).SupportsSNP, "SEV-SNP"
	case vmm.TEETDX:
		min, supports, kind = qemu.MinTDX, (*qemu.Info).SupportsTDX, "TDX"
	}
	if supports != nil {
		d.Name = fmt.Sprintf("QEMU %d.%d or newer", min.Major, min.Minor)
	}
	if env.QEMU == nil {
		d.Info = "not found"
		d.Mesg = "QEMU was not probed"
		return d
	}
	info, err := env.QEMU()
	if err != nil {
		d.Info = "not found"
		d.Mesg = err.Error()
		return d
	}
	d.Info = fmt.Sprintf("%s (%s)", info.Version, info.Path)
	d.Pass = supports == nil || supports(info)
	if !d.Pass {
		d.Mesg = fmt.Sprintf("QEMU %s at %s cannot launch %s guests: install QEMU %d.%d or newer, or set %s to one",
			info.Version, info.Path, kind, min.Major, min.Minor, qemu.EnvQEMU)
	}
	sb := Datum{Name: "Seccomp sandbox (-sandbox)", Pass: info.Sandbox}
	if !info.Sandbox {
		sb.Mesg = "This QEMU was built without seccomp: Keeps' VMs run without QEMU's -sandbox filter (install a QEMU built with libseccomp)"
	}
	d.Data = append(d.Data, sb)
	return d
}

// firmwareRow is the firmware vmm.FindFirmware picks for tee's VMs.
func firmwareRow(env Env, tee vmm.TEE) Datum {
	name := "SEV-SNP firmware"
	if tee == vmm.TEETDX {
		name = "TDX firmware"
	}
	p, err := vmm.FindFirmwareIn(env.FS, env.getenv, tee)
	if err != nil {
		return Datum{Name: name, Info: "not found", Mesg: err.Error()}
	}
	return Datum{Name: name, Pass: true, Info: p}
}

// keepImageRow is the Keep image the microVM backends boot.
func keepImageRow(env Env) Datum {
	d := Datum{Name: "Keep image", Info: "not found"}
	if env.KeepImage == nil {
		d.Mesg = "The Keep image was not looked for"
		return d
	}
	img, err := env.KeepImage()
	if err != nil {
		d.Mesg = err.Error()
		return d
	}
	d.Pass = true
	sum := img.Manifest.InitrdSHA256
	if len(sum) > 16 {
		sum = sum[:16] + "…"
	}
	d.Info = fmt.Sprintf("%s (kernel %s, initrd sha256:%s)", img.Dir, img.Manifest.KernelRelease, sum)
	return d
}

// collateralRow reports the collateral cache a TEE Keep's evidence needs
// when it names a Steward: the host reads it and hands it to the Keep. A
// Keep without a Steward needs none, nor does the backend to start, so
// the row itself passes and its detail rows say what is missing.
func collateralRow(dir string, files ...Datum) Datum {
	return Datum{Name: "Attestation collateral", Pass: true, Info: dir + " (needed by Keeps that name a Steward)", Data: files}
}

func snpCollateralRow(env Env) Datum {
	dir := env.SNPCacheDir
	if dir == "" {
		dir = snp.DefaultCacheDir
	}
	vcek := Datum{Name: "SEV-SNP VCEK key cache", Pass: globExists(env, dir, "vcek-"), Info: path.Join(dir, "vcek-*")}
	if !vcek.Pass {
		vcek.Mesg = fmt.Sprintf("No VCEK is cached in %s: `enarx platform snp fetch` fetches it when run inside an SEV-SNP guest on this machine (on the host it fetches the CRLs only); copy it here", dir)
	}
	crl := fileRow(env, "AMD CRL cache file", path.Join(dir, snp.CRLFile),
		"Run `enarx platform snp fetch` to fill the AMD CRL cache file")
	return collateralRow(dir, vcek, crl)
}

func tdxCollateralRow(env Env) Datum {
	dir := env.TDXCacheDir
	if dir == "" {
		dir = tdx.DefaultCacheDir
	}
	return collateralRow(dir, fileRow(env, "TDX collateral cache file", path.Join(dir, tdx.CollateralFile),
		fmt.Sprintf("No TDX collateral is cached in %s: `enarx platform tdx fetch` fetches it inside a TDX guest on this machine; copy its %s here", dir, tdx.CollateralFile)))
}

// tdxVMBackend is the TDX host: the microVM backend that boots the Keep
// image as a TD under QEMU.
func tdxVMBackend(env Env) Backend {
	b := Backend{Name: "tdx-vm"}
	cpu := cpuRow(env, "GenuineIntel")
	if !cpu.Pass {
		cpu.Mesg = "TDX needs an Intel Xeon processor with TDX, enabled in the firmware"
	}
	b.Data = append(b.Data,
		kvmRow(env, false),
		checkRow("TDX enabled in host kernel", vmm.TDXParamPath, vmm.TDXEnabled(env.FS)),
		cpu)
	b.Config = teeVMConfig(env, b.Name, vmm.TEETDX, tdxCollateralRow(env))
	return b
}

// teeVMConfig is the Config rows of a microVM backend with a TEE.
func teeVMConfig(env Env, name string, tee vmm.TEE, collateral Datum) []Datum {
	return []Datum{qemuRow(env, tee), firmwareRow(env, tee), keepImageRow(env), collateral, registeredRow(env, name)}
}
