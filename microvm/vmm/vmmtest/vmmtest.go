// Package vmmtest builds fake VM firmware images for tests of code that
// looks for firmware (vmm.FindFirmware, vmm.CheckFirmware, `enarx platform
// info`): each has the OVMF footer GUID table of one kind of build, which is
// all those checks read. Nothing in them runs.
package vmmtest

import (
	"bytes"
	"encoding/binary"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

func firmware(guids ...ovmf.GUID) []byte {
	var table []byte
	for _, g := range guids {
		table = append(table, 0, 0, 0, 0)
		table = binary.LittleEndian.AppendUint16(table, 4+18)
		table = append(table, g[:]...)
	}
	table = binary.LittleEndian.AppendUint16(table, uint16(len(table)+18))
	table = append(table, ovmf.FooterGUID[:]...)
	b := append(bytes.Repeat([]byte{0xcc}, 4096), table...)
	return append(b, make([]byte, ovmf.TrailerSize)...)
}

// AmdSevOVMF is shaped like an OvmfPkg/AmdSev build: SEV metadata, the
// SEV-ES reset block, the secret area and the kernel hashes area, so it can
// measure a direct kernel boot.
func AmdSevOVMF() []byte {
	return firmware(ovmf.SEVESResetBlockGUID, ovmf.SEVHashTableGUID, ovmf.SEVSecretGUID, ovmf.SEVMetadataGUID)
}

// TDVF is shaped like a TDX firmware: TDX metadata.
func TDVF() []byte { return firmware(ovmf.TDXMetadataGUID) }

// PlainOVMF is shaped like an OvmfPkg/OvmfX64 build: SEV metadata but no
// kernel hashes area.
func PlainOVMF() []byte { return firmware(ovmf.SEVESResetBlockGUID, ovmf.SEVMetadataGUID) }
