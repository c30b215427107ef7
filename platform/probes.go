package platform

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"strings"

	"github.com/enarx-go/enarx/backend"
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
		notInThisBuild("This build runs Keeps in SEV-SNP or TDX confidential VMs (backends snp, tdx) or in the sandbox; it does not build SGX enclaves"))
	return b
}

func ifFalse(ok bool, s string) string {
	if ok {
		return ""
	}
	return s
}

// sevBackend is the SEV-SNP *host* (upstream's sev backend, which launches
// SNP VMs with KVM): src/backend/sev/data.rs.
func sevBackend(env Env) Backend {
	b := Backend{Name: "sev"}
	b.Data = append(b.Data, fileRow(env, "Driver", "/dev/sev", "Load the ccp module with SEV support to get /dev/sev"))
	snpParam, ok := readTrim(env, "/sys/module/kvm_amd/parameters/sev_snp")
	snpOn := ok && (snpParam == "1" || snpParam == "Y")
	d := Datum{Name: "SEV-SNP enabled in host kernel", Pass: snpOn, Info: "/sys/module/kvm_amd/parameters/sev_snp"}
	if !snpOn {
		d.Mesg = "Load kvm_amd with sev_snp=1 on a kernel with SEV-SNP host support"
	}
	b.Data = append(b.Data, d, fileRow(env, "Driver", "/dev/kvm", "Load kvm and kvm_amd to get /dev/kvm"))
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
	b.Data = append(b.Data, cpu)
	keeps := env.MemlockLimit / (5 << 20)
	info := fmt.Sprintf("~%d keeps", keeps)
	if env.MemlockLimit == ^uint64(0) {
		info = "unlimited keeps"
	}
	b.Config = append(b.Config,
		Datum{Name: "MEMLOCK rlimit allows for", Pass: keeps > 0, Info: info, Mesg: ifFalse(keeps > 0, "Raise the MEMLOCK rlimit (ulimit -l) to at least 5 MiB per Keep")},
		Datum{Name: "SEV-SNP VCEK key cache", Pass: globExists(env, "/var/cache/amd-sev", "vcek-"), Info: "/var/cache/amd-sev/vcek-*"},
		fileRow(env, "AMD CRL cache file", "/var/cache/amd-sev/crls.der", "Run `enarx platform snp fetch` to fill the AMD CRL cache file"),
		notInThisBuild("This build does not launch SNP VMs from the host; run enarx inside an SNP guest and use the snp backend"))
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

// kvmBackend mirrors src/backend/kvm/data.rs.
func kvmBackend(env Env) Backend {
	b := Backend{Name: "kvm"}
	b.Data = append(b.Data, fileRow(env, "Driver", "/dev/kvm", "Load kvm and kvm_intel or kvm_amd to get /dev/kvm"))
	cpu := cpuRow(env, "")
	if env.CPUID != nil {
		_, ebx, _, _ := env.cpuid(7, 0)
		_, _, ecx1, _ := env.cpuid(1, 0)
		cpu.Data = append(cpu.Data, Datum{Name: "FSGSBASE instructions", Pass: bit(ebx, 0)}, Datum{Name: "RDRAND instruction", Pass: bit(ecx1, 30)})
		cpu.Pass = cpu.Pass && bit(ebx, 0) && bit(ecx1, 30)
	}
	b.Data = append(b.Data, cpu)
	b.Config = append(b.Config, notInThisBuild("This build does not run KVM Keeps; the sandbox backend isolates a Keep without virtualization"))
	return b
}

// tsmReport is the configfs-tsm attestation report interface (Linux 6.7+).
const tsmReport = "/sys/kernel/config/tsm/report"

func guestBackend(env Env, name, device, kind string) Backend {
	b := Backend{Name: name}
	dev := exists(env, device)
	tsm := exists(env, tsmReport)
	iface := Datum{Name: kind + " guest attestation interface", Pass: dev || tsm, Data: []Datum{
		{Name: "Guest device", Pass: dev, Info: device},
		{Name: "configfs-tsm reports", Pass: tsm, Info: tsmReport},
	}}
	if !iface.Pass {
		iface.Mesg = fmt.Sprintf("Run enarx inside a %s confidential VM (Linux 6.7+ offers %s; older guests %s)", kind, tsmReport, device)
	}
	b.Data = append(b.Data, iface)
	for _, r := range env.Registered {
		if r.Name() == name {
			b.Config = append(b.Config, configuredRow(r))
			return b
		}
	}
	b.Config = append(b.Config, Datum{Name: "Backend in this build", Pass: false, Info: "not registered"})
	return b
}

func configuredRow(r backend.Backend) Datum {
	d := Datum{Name: "Configured", Pass: true}
	if err := r.Configured(); err != nil {
		d.Pass = false
		d.Info = err.Error()
	}
	return d
}

func snpGuestBackend(env Env) Backend { return guestBackend(env, "snp", "/dev/sev-guest", "SEV-SNP") }
func tdxGuestBackend(env Env) Backend { return guestBackend(env, "tdx", "/dev/tdx_guest", "TDX") }

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
		Data:   []Datum{{Name: "Available", Pass: r.Available()}},
		Config: []Datum{configuredRow(r)},
	}
}
