package snpmeasure

import (
	"fmt"
	"sort"
	"strings"
)

// cpuModel is a QEMU x86 CPU model's CPUID family, model and stepping
// (QEMU target/i386/cpu.c, builtin_x86_defs; the -vN versions of these
// models keep the base model's family, model and stepping).
type cpuModel struct{ family, model, stepping uint32 }

var cpuModels = map[string]cpuModel{
	"EPYC": {23, 1, 2}, "EPYC-v1": {23, 1, 2}, "EPYC-v2": {23, 1, 2}, "EPYC-IBPB": {23, 1, 2},
	"EPYC-v3": {23, 1, 2}, "EPYC-v4": {23, 1, 2},
	"EPYC-Rome": {23, 49, 0}, "EPYC-Rome-v1": {23, 49, 0}, "EPYC-Rome-v2": {23, 49, 0}, "EPYC-Rome-v3": {23, 49, 0},
	"EPYC-Milan": {25, 1, 1}, "EPYC-Milan-v1": {25, 1, 1}, "EPYC-Milan-v2": {25, 1, 1},
	"EPYC-Genoa": {25, 17, 0}, "EPYC-Genoa-v1": {25, 17, 0},
	"EPYC-Turin": {26, 0, 0},
}

// CPUSignature is the value of CPUID Fn0000_0001_EAX for family, model and
// stepping (AMD CPUID Specification #25481): stepping in bits 3:0, the low
// model nibble in 7:4, the base family in 11:8 (0xf when the family is
// larger), the high model nibble in 19:16 and the extended family
// (family - 0xf) in 27:20.
func CPUSignature(family, model, stepping uint32) uint32 {
	base, ext := family, uint32(0)
	if family > 0xf {
		base, ext = 0xf, (family-0xf)&0xff
	}
	return ext<<20 | (model>>4&0xf)<<16 | base<<8 | (model&0xf)<<4 | stepping&0xf
}

// VCPUTypes lists the QEMU CPU model names this package knows, sorted.
func VCPUTypes() []string {
	names := make([]string, 0, len(cpuModels))
	for n := range cpuModels {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// VCPUSignature returns the CPUID signature KVM puts in RDX of each VMSA for
// the QEMU CPU model name (as given to -cpu).
func VCPUSignature(name string) (uint32, error) {
	m, ok := cpuModels[name]
	if !ok {
		return 0, fmt.Errorf("unknown vCPU type %q: known types are %s", name, strings.Join(VCPUTypes(), ", "))
	}
	return CPUSignature(m.family, m.model, m.stepping), nil
}
