package qemu

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/enarx-go/enarx/microvm/vmm"
)

// sandboxOpts is QEMU's seccomp filter: no obsolete system calls, no
// set*uid/gid, no fork/exec, no scheduler or affinity changes.
const sandboxOpts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// CPU models chosen when Spec.CPU is empty.
const (
	cpuTCG = "max"     // every feature TCG emulates
	cpuKVM = "host"    // the host CPU as KVM exposes it
	cpuSNP = "EPYC-v4" // what SNP measurements are usually computed for (the VMSA holds the CPUID signature)
)

// Object and device ids in the argv.
const (
	idConsole = "con0"
	idSerial  = "vser0"
	idSEV     = "sev0"
	idTDX     = "tdx0"
	idRAM     = "ram0"
)

// Options are the argv choices that do not come from the Spec.
type Options struct {
	// Sandbox adds -sandbox (only for a QEMU built with libseccomp; see
	// Info.Sandbox).
	Sandbox bool
	// ChannelFDs[i] is the descriptor number Spec.Channels[i].File has in
	// the QEMU process; nil means 3+i (exec.Cmd.ExtraFiles order).
	ChannelFDs []int
}

// Args is ArgsWith(s, Options{Sandbox: true, ChannelFDs: fds}).
func Args(s vmm.Spec, fds ...int) ([]string, error) {
	return ArgsWith(s, Options{Sandbox: true, ChannelFDs: fds})
}

// ArgsWith builds QEMU's argv (without the program name) for s, after
// applying its defaults and validating it (files included). The machine is
// q35 for every kind of VM; no monitor, no display, no default devices, no
// user config, no reboot (a guest reboot ends QEMU with status 0). The
// serial console is QEMU's stdout; each channel is a virtserialport on an
// inherited socket descriptor.
//
// Values that land inside QEMU's comma-separated option lists are escaped
// by doubling commas; -kernel, -initrd, -append and -bios take their value
// whole and are passed unchanged.
func ArgsWith(s vmm.Spec, o Options) ([]string, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := validateQEMU(s); err != nil {
		return nil, err
	}
	if o.ChannelFDs != nil && len(o.ChannelFDs) != len(s.Channels) {
		return nil, fmt.Errorf("qemu: %d channel descriptors for %d channels", len(o.ChannelFDs), len(s.Channels))
	}
	for _, fd := range o.ChannelFDs {
		if fd < 3 {
			return nil, fmt.Errorf("qemu: channel descriptor %d would be stdin, stdout or stderr", fd)
		}
	}
	if err := s.CheckFiles(); err != nil {
		return nil, err
	}

	var a argv
	a.add("-nodefaults", "-no-user-config")
	a.add("-display", "none", "-monitor", "none")
	a.add("-no-reboot")
	if o.Sandbox {
		a.add("-sandbox", sandboxOpts)
	}

	machine := opts("q35")
	switch s.TEE {
	case vmm.TEESNP:
		machine.kv("confidential-guest-support", idSEV).kv("memory-backend", idRAM)
	case vmm.TEETDX:
		machine.kv("confidential-guest-support", idTDX).kv("kernel-irqchip", "split")
	}
	a.add("-machine", machine.String())
	accel := opts(string(s.Accel))
	if s.Accel == vmm.AccelTCG && s.VCPUs > 1 {
		accel.kv("thread", "multi") // one host thread per vCPU
	}
	a.add("-accel", accel.String())
	a.add("-cpu", cpuModel(s))
	a.add("-m", strconv.Itoa(s.MemoryMiB))
	a.add("-smp", strconv.Itoa(s.VCPUs))

	switch s.TEE {
	case vmm.TEESNP:
		a.add("-object", opts("memory-backend-memfd").kv("id", idRAM).
			kv("size", strconv.Itoa(s.MemoryMiB)+"M").kv("share", "on").String())
		a.add("-object", snpObject(s.SNP))
	case vmm.TEETDX:
		obj, err := tdxObject(s.TDX)
		if err != nil {
			return nil, err
		}
		a.add("-object", obj)
	}
	if s.Firmware != "" {
		a.add("-bios", s.Firmware)
	}
	a.add("-kernel", s.Kernel)
	if s.Initrd != "" {
		a.add("-initrd", s.Initrd)
	}
	a.add("-append", s.Cmdline)

	a.add("-chardev", opts("stdio").kv("id", idConsole).kv("signal", "off").String())
	a.add("-serial", "chardev:"+idConsole)

	if len(s.Channels) > 0 {
		dev := opts("virtio-serial-pci").kv("id", idSerial)
		if s.TEE != vmm.TEENone {
			// QEMU sets these itself for confidential guests; explicit
			// here so the argv says what the guest gets.
			dev.kv("disable-legacy", "on").kv("iommu_platform", "on")
		}
		a.add("-device", dev.String())
		for i, c := range s.Channels {
			fd := 3 + i
			if o.ChannelFDs != nil {
				fd = o.ChannelFDs[i]
			}
			id := "ch" + strconv.Itoa(i)
			a.add("-chardev", opts("socket").kv("id", id).kv("fd", strconv.Itoa(fd)).String())
			a.add("-device", opts("virtserialport").kv("bus", idSerial+".0").kv("chardev", id).kv("name", c.Name).String())
		}
	}
	return a, nil
}

// validateQEMU checks what is specific to QEMU.
func validateQEMU(s vmm.Spec) error {
	if s.CPU != "" && !validCPU(s.CPU) {
		return fmt.Errorf("%w: CPU model %q: use a QEMU model name with optional ,+feature/,-feature", vmm.ErrInvalidSpec, s.CPU)
	}
	if s.TEE == vmm.TEETDX && s.CPU != "" && s.CPU != cpuKVM {
		return fmt.Errorf("%w: a TDX VM runs with -cpu host, not %q (TDX rejects named CPU models)", vmm.ErrInvalidSpec, s.CPU)
	}
	return nil
}

// validCPU accepts a model name and feature list ("EPYC-v4",
// "max,-la57,+invtsc"): the value is a QEMU option list on purpose.
func validCPU(cpu string) bool {
	for _, r := range cpu {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_.+,=", r):
		default:
			return false
		}
	}
	return !strings.HasPrefix(cpu, ",") && !strings.Contains(cpu, ",,")
}

func cpuModel(s vmm.Spec) string {
	switch {
	case s.CPU != "":
		return s.CPU
	case s.TEE == vmm.TEESNP:
		return cpuSNP
	case s.Accel == vmm.AccelTCG:
		return cpuTCG
	}
	return cpuKVM
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func snpObject(p *vmm.SNP) string {
	o := opts("sev-snp-guest").kv("id", idSEV).
		kv("policy", "0x"+strconv.FormatUint(p.Policy, 16)).
		kv("cbitpos", strconv.Itoa(p.CBitPos)).
		kv("reduced-phys-bits", strconv.Itoa(p.ReducedPhysBits)).
		kv("kernel-hashes", onOff(p.KernelHashes))
	if len(p.HostData) > 0 {
		o.kv("host-data", base64.StdEncoding.EncodeToString(p.HostData))
	}
	return o.String()
}

// tdxObject is the tdx-guest object in QEMU's JSON form, the only form
// that can carry quote-generation-socket (a SocketAddress).
func tdxObject(p *vmm.TDX) (string, error) {
	type socketAddress struct {
		Type string `json:"type"`
		Path string `json:"path"`
	}
	obj := struct {
		QOMType       string         `json:"qom-type"`
		ID            string         `json:"id"`
		SeptVEDisable bool           `json:"sept-ve-disable"`
		MRConfigID    string         `json:"mrconfigid,omitempty"`
		MROwner       string         `json:"mrowner,omitempty"`
		MROwnerConfig string         `json:"mrownerconfig,omitempty"`
		QGS           *socketAddress `json:"quote-generation-socket,omitempty"`
	}{
		QOMType: "tdx-guest", ID: idTDX, SeptVEDisable: p.SeptVEDisable,
		MRConfigID: b64(p.MRConfigID), MROwner: b64(p.MROwner), MROwnerConfig: b64(p.MROwnerConfig),
	}
	if p.QuoteGenerationSocket != "" {
		obj.QGS = &socketAddress{Type: "unix", Path: p.QuoteGenerationSocket}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("qemu: tdx-guest object: %w", err)
	}
	return string(b), nil
}

func b64(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

type argv []string

func (a *argv) add(s ...string) { *a = append(*a, s...) }

// optList builds a QEMU option list: "type,key=value,…".
type optList struct{ b strings.Builder }

func opts(first string) *optList {
	o := &optList{}
	o.b.WriteString(EscapeOptValue(first))
	return o
}

func (o *optList) kv(k, v string) *optList {
	o.b.WriteByte(',')
	o.b.WriteString(k)
	o.b.WriteByte('=')
	o.b.WriteString(EscapeOptValue(v))
	return o
}

func (o *optList) String() string { return o.b.String() }

// EscapeOptValue escapes a value for a QEMU option list (QemuOpts and
// keyval syntax): a comma is written twice.
func EscapeOptValue(v string) string { return strings.ReplaceAll(v, ",", ",,") }
