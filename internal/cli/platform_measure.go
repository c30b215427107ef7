package cli

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/backend/microvm"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/snpmeasure"
	"github.com/enarx-go/enarx/microvm/tdxmeasure"
	"github.com/enarx-go/enarx/microvm/vmm"
)

// snpOfflineFlags are the inputs of `enarx platform snp measurement` when it
// computes a launch digest instead of reading this guest's report.
type snpOfflineFlags struct {
	ovmf, kernel, initrd, cmdline string
	vcpus                         int
	vcpuType, guestFeatures       string
	noKernel                      bool
}

func (f *snpOfflineFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.ovmf, "ovmf", "", "offline: the AmdSev OVMF image QEMU loads with -bios")
	fl.StringVar(&f.kernel, "kernel", "", "offline: the kernel QEMU loads with -kernel (measured direct boot, kernel-hashes=on)")
	fl.StringVar(&f.initrd, "initrd", "", "offline: the initrd (-initrd); needs --kernel")
	fl.StringVar(&f.cmdline, "append", "", "offline: the kernel command line (-append); needs --kernel")
	fl.BoolVar(&f.noKernel, "no-kernel", false, "offline: a launch without -kernel (the firmware boots on its own)")
	fl.IntVar(&f.vcpus, "vcpus", 0, "offline: vCPU count (-smp)")
	fl.StringVar(&f.vcpuType, "vcpu-type", "", "offline: QEMU CPU model (-cpu), e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa")
	fl.StringVar(&f.guestFeatures, "guest-features", "0x1", "offline: VMSA SEV_FEATURES in hex (0x1 = SNPActive, what QEMU >= 9.1 sets by default)")
}

// offlineFlagNames lists the flags that select the offline computation.
var offlineFlagNames = []string{"ovmf", "kernel", "initrd", "append", "no-kernel", "vcpus", "vcpu-type", "guest-features"}

// offline reports whether any offline flag was given.
func offline(c *cobra.Command) bool {
	for _, n := range offlineFlagNames {
		if c.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// parseGuestFeatures reads --guest-features. It insists on the 0x prefix:
// sev-snp-measure reads a bare number as decimal, so "21" would be ambiguous.
func parseGuestFeatures(s string) (uint64, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return 0, fmt.Errorf("--guest-features %q: write it in hex with a 0x prefix, e.g. 0x1 (sev-snp-measure would read a bare number as decimal)", s)
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("--guest-features %q: not a 64-bit hex number", s)
	}
	return v, nil
}

// snpOfflineOptions validates the flags and reads the files they name.
func (f *snpOfflineFlags) options() (snpmeasure.Options, []string, error) {
	var o snpmeasure.Options
	if f.ovmf == "" {
		return o, nil, errors.New("--ovmf is required to compute a launch digest offline (the AmdSev OVMF image, e.g. /usr/share/ovmf/OVMF.amdsev.fd)")
	}
	if f.vcpus == 0 || f.vcpuType == "" {
		return o, nil, errors.New("--vcpus and --vcpu-type are required: both are measured (one VMSA per vCPU, the CPU signature in each)")
	}
	gf, err := parseGuestFeatures(f.guestFeatures)
	if err != nil {
		return o, nil, err
	}
	sig, err := snpmeasure.VCPUSignature(f.vcpuType)
	if err != nil {
		return o, nil, fmt.Errorf("--vcpu-type: %w", err)
	}
	if f.kernel == "" && !f.noKernel && (f.initrd != "" || f.cmdline != "") {
		return o, nil, errors.New("--initrd and --append need --kernel: QEMU measures them only with -kernel")
	}
	if f.noKernel && (f.kernel != "" || f.initrd != "" || f.cmdline != "") {
		return o, nil, errors.New("--no-kernel cannot be combined with --kernel, --initrd or --append")
	}
	o.VCPUs, o.VCPUType, o.GuestFeatures, o.Cmdline = f.vcpus, f.vcpuType, gf, f.cmdline
	var desc []string
	read := func(label, path string, dst *[]byte) error {
		if path == "" {
			desc = append(desc, fmt.Sprintf("%-8s none", label))
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--%s: %w", label, err)
		}
		*dst = b
		h := sha256.Sum256(b)
		desc = append(desc, fmt.Sprintf("%-8s %s (%d bytes, sha256 %x)", label, path, len(b), h))
		return nil
	}
	if err := read("ovmf", f.ovmf, &o.OVMF); err != nil {
		return o, nil, err
	}
	if !f.noKernel {
		if err := read("kernel", f.kernel, &o.Kernel); err != nil {
			return o, nil, err
		}
		if err := read("initrd", f.initrd, &o.Initrd); err != nil {
			return o, nil, err
		}
		desc = append(desc, fmt.Sprintf("%-8s %q", "append", f.cmdline))
	} else {
		desc = append(desc, "kernel   none (no -kernel: the hashes page is measured as zero pages)")
	}
	desc = append(desc, fmt.Sprintf("vcpus    %d x %s (CPUID signature %#x), guest features %#x", o.VCPUs, o.VCPUType, sig, gf))
	return o, desc, nil
}

// runSNPOffline prints the launch digest of a QEMU SEV-SNP launch; the last
// line is the 96-hex-digit digest.
func runSNPOffline(w io.Writer, f *snpOfflineFlags, asJSON bool) error {
	o, desc, err := f.options()
	if err != nil {
		return err
	}
	d, err := snpmeasure.Measure(o)
	if err != nil {
		return err
	}
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(map[string]any{"measurement": d.String(), "inputs": desc})
	}
	fmt.Fprintln(w, "# SEV-SNP launch digest (MEASUREMENT) of a QEMU launch with kernel-hashes=on, computed offline from:")
	for _, l := range desc {
		fmt.Fprintf(w, "#   %s\n", l)
	}
	if f.noKernel {
		fmt.Fprintln(w, "# WARNING: without -kernel the digest covers the firmware only: whatever the firmware then boots")
		fmt.Fprintln(w, "# (chosen by the host) runs under it. Pin it only for a firmware that boots nothing but itself.")
	}
	fmt.Fprintf(w, "# pin it in a Steward policy as [snp] hash = [%q]\n", d.String())
	fmt.Fprintln(w, d.String())
	return nil
}

// keepImageMode reports whether the offline flags name no kernel inputs:
// then the Keep image (microvm/image) supplies kernel, initrd and cmdline.
func keepImageMode(c *cobra.Command) bool {
	for _, n := range []string{"kernel", "initrd", "append", "no-kernel"} {
		if c.Flags().Changed(n) {
			return false
		}
	}
	return true
}

// runSNPKeepImage prints the Steward [snp] lines that pin our Keep image
// (image.Locate) launched with the given firmware and vCPU shape.
func runSNPKeepImage(w io.Writer, f *snpOfflineFlags, asJSON bool) error {
	img, err := image.Locate()
	if err != nil {
		return err
	}
	k := *f
	if k.ovmf == "" {
		// The firmware the sev backend would launch the Keep with.
		if k.ovmf, err = vmm.FindFirmware(vmm.TEESNP); err != nil {
			return fmt.Errorf("%w (or name the AmdSev OVMF with --ovmf)", err)
		}
	}
	k.kernel, k.initrd, k.cmdline = img.KernelPath, img.InitrdPath, img.Manifest.Cmdline
	// The sev backend launches every Keep with one vCPU model: a digest
	// for another would never match a Keep's report.
	switch k.vcpuType {
	case "":
		k.vcpuType = microvm.SNPVCPUType
	case microvm.SNPVCPUType:
	default:
		return fmt.Errorf("--vcpu-type %s: the sev backend launches Keeps with -cpu %s, so a digest for %s would match none; leave --vcpu-type out or name %s",
			k.vcpuType, microvm.SNPVCPUType, k.vcpuType, microvm.SNPVCPUType)
	}
	o, desc, err := k.options()
	if err != nil {
		return err
	}
	d, err := snpmeasure.Measure(o)
	if err != nil {
		return err
	}
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(map[string]any{"measurement": d.String(), "image": img.Dir, "inputs": desc})
	}
	fmt.Fprintf(w, "# Steward policy for the Keep image in %s launched by QEMU as an SEV-SNP guest\n", img.Dir)
	fmt.Fprintln(w, "# (kernel-hashes=on), launch digest computed offline from (see docs/policy.md):")
	for _, l := range desc {
		fmt.Fprintf(w, "#   %s\n", l)
	}
	fmt.Fprintln(w, "# Each vCPU count and type measures differently: pin every shape the host may launch.")
	fmt.Fprintln(w, "[snp]")
	fmt.Fprintf(w, "hash = [%q]\n", d.String())
	return nil
}

// runTDXOffline prints the MRTD of a TDVF image; the last line is the
// 96-hex-digit MRTD of the chosen variant.
func runTDXOffline(w io.Writer, firmware, variant string, asJSON bool) error {
	var v tdxmeasure.Variant
	switch variant {
	case "single-pass":
		v = tdxmeasure.SinglePass
	case "two-pass":
		v = tdxmeasure.TwoPass
	default:
		return fmt.Errorf("--variant %q: want single-pass (upstream QEMU >= 10.1 on Linux >= 6.16) or two-pass (pre-upstream TDX QEMU/KVM trees)", variant)
	}
	img, err := os.ReadFile(firmware)
	if err != nil {
		return fmt.Errorf("--firmware: %w", err)
	}
	fw, err := tdxmeasure.ParseFirmware(img)
	if err != nil {
		return fmt.Errorf("%s: %w", firmware, err)
	}
	all := map[tdxmeasure.Variant]tdxmeasure.Digest{}
	for _, x := range tdxmeasure.Variants() {
		if all[x], err = fw.MRTD(x); err != nil {
			return err
		}
	}
	const notComputed = "RTMR0 (TD HOB, ACPI tables, UEFI variables: depends on the QEMU version, machine, memory and vCPUs), " +
		"RTMR1 (the kernel's Authenticode hash after QEMU patches its header, EFI boot events) and " +
		"RTMR2 (command line and initrd as the guest measures them) are not computed offline; pin rtmr1 and rtmr2 from a measured launch " +
		"(a Steward's refusal names the TD's values): MRTD alone pins only the firmware, and a Steward refuses a [tdx] table without them " +
		"unless it sets allow_any_kernel = true"
	if asJSON {
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(map[string]any{"mrtd": all[v].String(), "variant": variant,
			"single_pass": all[tdxmeasure.SinglePass].String(), "two_pass": all[tdxmeasure.TwoPass].String(),
			"not_computed": notComputed})
	}
	h := sha256.Sum256(img)
	fmt.Fprintf(w, "# TDX MRTD of %s (%d bytes, sha256 %x), computed offline:\n", firmware, len(img), h)
	fmt.Fprintf(w, "#   single-pass (upstream QEMU >= 10.1, Linux >= 6.16): %s\n", all[tdxmeasure.SinglePass])
	fmt.Fprintf(w, "#   two-pass (pre-upstream TDX QEMU/KVM trees):         %s\n", all[tdxmeasure.TwoPass])
	fmt.Fprintf(w, "# %s.\n", notComputed)
	fmt.Fprintf(w, "# pin it in a Steward policy as [tdx] mrtd = [%q]\n", all[v].String())
	fmt.Fprintln(w, all[v].String())
	return nil
}
