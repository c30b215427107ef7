package platform

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"strings"

	"github.com/enarx-go/enarx/backend"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	tdxbackend "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/evidence/tsm"
	"github.com/enarx-go/enarx/microvm/vmm"
)

func rel(path string) string { return strings.TrimPrefix(path, "/") }

func exists(env Env, path string) bool {
	if env.FS == nil {
		return false
	}
	_, err := fs.Stat(env.FS, rel(path))
	return err == nil
}

func readTrim(env Env, path string) (string, bool) {
	if env.FS == nil {
		return "", false
	}
	b, err := fs.ReadFile(env.FS, rel(path))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func fileRow(env Env, name, path, mesg string) Datum {
	d := Datum{Name: name, Pass: exists(env, path), Info: path}
	if !d.Pass {
		d.Mesg = mesg
	}
	return d
}

func (e Env) cpuid(leaf, sub uint32) (a, b, c, d uint32) {
	if e.CPUID == nil {
		return 0, 0, 0, 0
	}
	return e.CPUID(leaf, sub)
}

func bit(v uint32, n uint) bool { return v>>n&1 == 1 }

// cpuVendor returns the CPUID vendor string ("GenuineIntel").
func cpuVendor(env Env) string {
	if env.CPUID == nil {
		return ""
	}
	_, b, c, d := env.cpuid(0, 0)
	var s [12]byte
	binary.LittleEndian.PutUint32(s[0:], b)
	binary.LittleEndian.PutUint32(s[4:], d)
	binary.LittleEndian.PutUint32(s[8:], c)
	return strings.TrimRight(string(s[:]), "\x00")
}

// cpuBrand returns the processor brand string, or "" if the CPU has none.
func cpuBrand(env Env) string {
	if env.CPUID == nil {
		return ""
	}
	if max, _, _, _ := env.cpuid(0x80000000, 0); max < 0x80000004 {
		return ""
	}
	var s []byte
	for leaf := uint32(0x80000002); leaf <= 0x80000004; leaf++ {
		a, b, c, d := env.cpuid(leaf, 0)
		for _, r := range []uint32{a, b, c, d} {
			s = binary.LittleEndian.AppendUint32(s, r)
		}
	}
	return strings.TrimSpace(strings.TrimRight(string(s), "\x00"))
}

func cpuRow(env Env, wantVendor string) Datum {
	v, brand := cpuVendor(env), cpuBrand(env)
	info := v
	if brand != "" {
		info = brand + " | " + v
	}
	if env.CPUID == nil {
		info = "no CPUID (not an x86-64 CPU)"
	}
	d := Datum{Name: "CPU", Pass: env.CPUID != nil && (wantVendor == "" || v == wantVendor), Info: info}
	return d
}

func notInThisBuild(mesg string) Datum {
	return Datum{Name: "Keeps of this kind in this build", Pass: false, Info: "not implemented", Mesg: mesg}
}

// sgxBackend mirrors upstream src/backend/sgx/data.rs.
func sgxBackend(env Env) Backend {
	b := Backend{Name: "sgx"}
	b.Data = append(b.Data, fileRow(env, "Driver", "/dev/sgx_enclave",
		"Use a Linux 5.11+ kernel with SGX enabled in the firmware to get /dev/sgx_enclave"))
	cpu := cpuRow(env, "GenuineIntel")
	max, _, _, _ := env.cpuid(0, 0)
	var sgx bool // SGX2, FLC and an EPC
	if env.CPUID != nil && max >= 7 {
		_, ebx, ecx, _ := env.cpuid(7, 0)
		support := Datum{Name: "SGX Support", Pass: bit(ebx, 2)}
		if support.Pass && max >= 0x12 {
			a, miscSel, _, d := env.cpuid(0x12, 0)
			support.Data = append(support.Data,
				Datum{Name: "Version 1", Pass: bit(a, 0)},
				Datum{Name: "Version 2", Pass: bit(a, 1), Mesg: ifFalse(bit(a, 1), "Keeps need SGX2 (EDMM)")},
				Datum{Name: "FLC", Pass: bit(ecx, 30), Mesg: ifFalse(bit(ecx, 30), "Keeps need Flexible Launch Control")},
				Datum{Name: "Max Size (32-bit)", Pass: true, Info: fmt.Sprintf("2^%d bytes", d&0xff)},
				Datum{Name: "Max Size (64-bit)", Pass: true, Info: fmt.Sprintf("2^%d bytes", d>>8&0xff)},
				Datum{Name: "MiscSelect", Pass: true, Info: fmt.Sprintf("%#x", miscSel)},
			)
			fa, fb, fc, fd := env.cpuid(0x12, 1)
			support.Data = append(support.Data,
				Datum{Name: "Features", Pass: true, Info: fmt.Sprintf("%#016x", uint64(fa)|uint64(fb)<<32)},
				Datum{Name: "Xfrm", Pass: true, Info: fmt.Sprintf("%#016x", uint64(fc)|uint64(fd)<<32)})
			var epc uint64
			for i := uint32(2); i < 2+64; i++ {
				a, _, c, d := env.cpuid(0x12, i)
				if a&0xf != 1 {
					break
				}
				epc += uint64(c&0xfffff000) | uint64(d&0xfffff)<<32
			}
			support.Data = append(support.Data, Datum{Name: "EPC Size", Pass: epc > 0, Info: fmt.Sprintf("%d bytes", epc)})
			sgx = bit(a, 1) && bit(ecx, 30) && epc > 0
		}
		cpu.Data = append(cpu.Data, support)
	}
	cpu.Pass = cpu.Pass && sgx
	b.Data = append(b.Data, cpu,
		fileRow(env, "Intel CRL cache file", "/var/cache/intel-sgx/crls.der", "The Intel CRL cache is filled by upstream Enarx's `enarx platform sgx cache-crl`; this build has no SGX backend"),
		Datum{Name: "TCB & FMSPC cache files", Pass: exists(env, "/var/cache/intel-sgx/fmspc.txt") && exists(env, "/var/cache/intel-sgx/tcb.der"),
			Info: "/var/cache/intel-sgx/{fmspc.txt,tcb.der}"})
	if last := &b.Data[len(b.Data)-1]; !last.Pass {
		last.Mesg = "The TCB and FMSPC caches are filled by upstream Enarx's `enarx platform sgx cache-pck` and `cache-tcb`; this build has no SGX backend"
	}
	b.Config = append(b.Config,
		fileRow(env, "AESM Daemon Socket", "/var/run/aesmd/aesm.socket", "Install and start the Intel AESM service (aesmd) for SGX attestation"),
		notInThisBuild("This build runs Keeps in microVMs (backends kvm, sev, tdx-vm), inside SEV-SNP or TDX confidential VMs (snp, tdx) or in the sandbox; it does not build SGX enclaves"))
	return b
}

func ifFalse(ok bool, s string) string {
	if ok {
		return ""
	}
	return s
}

// sevBackend is the SEV-SNP *host* (upstream's sev backend; here the
// microVM backend that boots the Keep image as an SNP guest under QEMU):
// upstream's rows of src/backend/sev/data.rs, made of the backend's own
// checks, and what it needs to launch.
func sevBackend(env Env) Backend {
	b := Backend{Name: "sev"}
	b.Data = append(b.Data,
		checkRow("Driver", vmm.SEVDevicePath, vmm.SEVDevice(env.FS)),
		checkRow("SEV-SNP enabled in host kernel", vmm.SNPParamPath, vmm.SNPEnabled(env.FS)),
		kvmRow(env, false))
	cpu := cpuRow(env, "AuthenticAMD")
	brand := cpuBrand(env)
	if env.CPUID != nil {
		cpu.Data = append(cpu.Data, Datum{Name: "Microcode support", Pass: strings.Contains(brand, "EPYC"), Info: "AMD EPYC processor"})
		if max, _, _, _ := env.cpuid(0x80000000, 0); max >= 0x8000001f {
			a, bx, c, dx := env.cpuid(0x8000001f, 0)
			sme := Datum{Name: "Secure Memory Encryption (SME)", Pass: bit(a, 0), Data: []Datum{
				{Name: "Physical address bit reduction", Pass: true, Info: fmt.Sprint(bx >> 6 & 0x3f)},
				{Name: "C-bit location in page table entry", Pass: true, Info: fmt.Sprint(bx & 0x3f)},
			}}
			sev := Datum{Name: "Secure Encrypted Virtualization (SEV)", Pass: bit(a, 1), Data: []Datum{
				{Name: "Number of encrypted guests supported simultaneously", Pass: true, Info: fmt.Sprint(c)},
				{Name: "Minimum ASID value for SEV-enabled, SEV-ES disabled guest", Pass: true, Info: fmt.Sprint(dx)},
			}}
			cpu.Data = append(cpu.Data, sme, sev,
				Datum{Name: "Secure Nested Paging (SEV-SNP)", Pass: bit(a, 4)},
				Datum{Name: "Page Flush MSR", Pass: bit(a, 2)})
			cpu.Pass = cpu.Pass && bit(a, 4)
		} else {
			cpu.Pass = false
		}
	}
	if !cpu.Pass {
		cpu.Mesg = "SEV-SNP needs an AMD EPYC processor of the 7003 series (Milan) or later with SNP enabled in the firmware"
	}
	b.Data = append(b.Data, cpu)
	b.Config = teeVMConfig(env, b.Name, vmm.TEESNP, snpCollateralRow(env))
	return b
}

func globExists(env Env, dir, prefix string) bool {
	if env.FS == nil {
		return false
	}
	ents, err := fs.ReadDir(env.FS, rel(dir))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return true
		}
	}
	return false
}

// kvmBackend is the microVM backend without a TEE: upstream's rows of
// src/backend/kvm/data.rs, made of the backend's own checks, and what it
// needs to launch. The CPU rows describe the CPU the Keep's VM gets
// (-cpu host); the backend needs none of its features.
func kvmBackend(env Env) Backend {
	b := Backend{Name: "kvm"}
	b.Data = append(b.Data, kvmRow(env, true))
	cpu := cpuRow(env, "")
	cpu.Pass = true
	if env.CPUID != nil {
		_, ebx, _, _ := env.cpuid(7, 0)
		_, _, ecx1, _ := env.cpuid(1, 0)
		cpu.Data = append(cpu.Data, Datum{Name: "FSGSBASE instructions", Pass: bit(ebx, 0)}, Datum{Name: "RDRAND instruction", Pass: bit(ecx1, 30)})
	}
	b.Data = append(b.Data, cpu)
	b.Config = append(b.Config,
		qemuRow(env, vmm.TEENone),
		keepImageRow(env),
		registeredRow(env, "kvm"))
	return b
}

// guestBackend is a backend that runs the Keep inside this machine, a
// confidential VM: its attestation interface row is the backend's own
// availability check.
func guestBackend(env Env, name, kind, device, provider string, check func(fs.FS, func() (string, error)) error) Backend {
	b := Backend{Name: name}
	tsmErr := tsm.CheckProvider(env.FS, provider, env.TSMProvider)
	tsmRow := Datum{Name: "configfs-tsm reports", Pass: tsmErr == nil, Info: tsm.ReportDir + " (provider " + provider + ")"}
	if tsmErr != nil {
		tsmRow.Info = tsmErr.Error()
	}
	iface := Datum{Name: kind + " guest attestation interface", Data: []Datum{
		{Name: "Guest device", Pass: exists(env, device), Info: device},
		tsmRow,
	}}
	if err := check(env.FS, env.TSMProvider); err != nil {
		iface.Mesg = err.Error()
	} else {
		iface.Pass = true
	}
	b.Data = append(b.Data, iface)
	b.Config = append(b.Config, registeredRow(env, name))
	return b
}

// registeredRow is the Configured() row of the registered backend called
// name, or a failing row when this build has no such backend.
func registeredRow(env Env, name string) Datum {
	for _, r := range env.Registered {
		if r.Name() == name {
			return configuredRow(r)
		}
	}
	return Datum{Name: "Backend in this build", Pass: false, Info: "not registered",
		Mesg: fmt.Sprintf("This enarx was built without the %s backend", name)}
}

func configuredRow(r backend.Backend) Datum {
	d := Datum{Name: "Configured", Pass: true}
	if err := r.Configured(); err != nil {
		d.Pass = false
		d.Info = err.Error()
	}
	return d
}

func snpGuestBackend(env Env) Backend {
	return guestBackend(env, snpbackend.Name, "SEV-SNP", snpbackend.GuestDevice, tsm.ProviderSNP, snpbackend.GuestCheck)
}

func tdxGuestBackend(env Env) Backend {
	return guestBackend(env, tdxbackend.Name, "TDX", tdxbackend.GuestDevice, tsm.ProviderTDX, tdxbackend.GuestCheck)
}

// sandboxBackend reports the kernel features the sandbox backend uses.
// Seccomp is required; every other layer is reported, and a missing one is
// a hint, not a failure (the Keep starts without it unless
// --require-isolation is given).
func sandboxBackend(env Env) Backend {
	b := Backend{Name: "sandbox"}
	if env.Sandbox == nil {
		b.Data = append(b.Data, Datum{Name: "Linux", Pass: false, Mesg: "The sandbox backend needs Linux"})
		return b
	}
	caps := env.Sandbox()
	layers := Datum{Name: "Isolation layers", Pass: true}
	n := 0
	for _, c := range caps {
		d := Datum{Name: c.Name, Pass: c.OK, Info: c.Info}
		switch {
		case c.Name == "Seccomp filters":
			if !c.OK {
				d.Mesg = "Enable CONFIG_SECCOMP_FILTER: the sandbox cannot confine a Keep without it"
			}
			b.Data = append(b.Data, d)
			continue
		case !c.OK && strings.HasSuffix(c.Name, "namespaces"):
			d.Mesg = fmt.Sprintf("%s are unavailable: the Keep starts without them (see sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or run inside a container that allows them); --require-isolation refuses instead", c.Name)
		case !c.OK:
			d.Mesg = fmt.Sprintf("%s: the Keep starts without this layer; --require-isolation refuses instead", c.Name)
		}
		if c.OK {
			n++
		}
		layers.Data = append(layers.Data, d)
	}
	layers.Info = fmt.Sprintf("%d of %d available", n, len(layers.Data))
	b.Data = append(b.Data, layers)
	return b
}

func nilBackend(Env) Backend { return Backend{Name: "nil"} }

// registeredBackend reports a backend this build registers but the report
// has no probes for (e.g. the emulated TEE backends).
func registeredBackend(r backend.Backend) Backend {
	return Backend{Name: r.Name(),
		Data:       []Datum{{Name: "Available", Pass: r.Available()}},
		Config:     []Datum{configuredRow(r)},
		Protection: protectionOf(r.Protection()),
	}
}
