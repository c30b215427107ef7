// Package sevhost reads, on an AMD SEV-SNP host, what selects the VCEK that
// signs its guests' reports: the chip ID (SEV_GET_ID2) and the reported TCB
// (SNP_PLATFORM_STATUS), from the AMD secure processor through /dev/sev.
// With them the host fetches the VCEK from AMD's key server into the
// collateral cache that the sev backend sends into its Keeps.
//
// Trust: none is needed. The host only transports the VCEK; the Steward
// checks it against AMD's roots and the report it signed. go-sev-guest
// covers the guest side only, so the two ioctls are written here, from the
// kernel's include/uapi/linux/psp-sev.h.
package sevhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/evidence/snp"
)

// DevicePath is the AMD secure processor's device on the host.
const DevicePath = "/dev/sev"

// Commands of SEV_ISSUE_CMD (psp-sev.h: enum sev_cmd).
const (
	cmdGetID2            = 8
	cmdSNPPlatformStatus = 9
)

// issueCmd is struct sev_issue_cmd (packed: u32 cmd, u64 data, u32 error).
const issueCmdSize = 16

// sevIssueCmd is _IOWR('S', 0x0, struct sev_issue_cmd).
const sevIssueCmd uintptr = 3<<30 | issueCmdSize<<16 | 'S'<<8 | 0

// snpStatusSize is sizeof(struct sev_user_data_snp_status).
const snpStatusSize = 32

// Device issues SEV_ISSUE_CMD. arg is the command's structure, which the
// firmware reads and writes. Commands whose structure points at a buffer
// (SEV_GET_ID2: struct sev_user_data_get_id2 { __u64 address; __u32
// length; }) pass that buffer as buf: the device puts its address into the
// first 8 bytes of arg. Issue returns the firmware's status word and the
// ioctl's error.
type Device interface {
	Issue(cmd uint32, arg, buf []byte) (fwError uint32, err error)
	Close() error
}

// Open opens /dev/sev.
func Open() (Device, error) {
	f, err := os.OpenFile(DevicePath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s (an SEV-SNP host with the ccp module loaded; run as a user that may open it): %w", DevicePath, err)
	}
	return &device{f: f}, nil
}

type device struct{ f *os.File }

func (d *device) Issue(cmd uint32, arg, buf []byte) (uint32, error) {
	if len(arg) == 0 {
		return 0, errors.New("empty command structure")
	}
	if buf != nil {
		if len(arg) < 8 || len(buf) == 0 {
			return 0, errors.New("command structure has no room for a buffer address")
		}
		binary.LittleEndian.PutUint64(arg[0:], uint64(uintptr(unsafe.Pointer(&buf[0]))))
	}
	issue := make([]byte, issueCmdSize) // on the heap: it must not move during the ioctl
	binary.LittleEndian.PutUint32(issue[0:], cmd)
	binary.LittleEndian.PutUint64(issue[4:], uint64(uintptr(unsafe.Pointer(&arg[0]))))
	rc, err := d.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var ioErr error
	if cerr := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, sevIssueCmd, uintptr(unsafe.Pointer(&issue[0])))
		if e != 0 {
			ioErr = e
		}
	}); cerr != nil {
		return 0, cerr
	}
	runtime.KeepAlive(arg)
	runtime.KeepAlive(buf)
	return binary.LittleEndian.Uint32(issue[12:]), ioErr
}

func (d *device) Close() error { return d.f.Close() }

// Status is what SNP_PLATFORM_STATUS reports that matters here.
type Status struct {
	APIMajor, APIMinor uint8
	State              uint8
	BuildID            uint32
	// MaskChipID: the firmware reports zeros for the chip ID in reports
	// (and so the VCEK cannot be selected by chip).
	MaskChipID bool
	// VLEK: the platform signs with a VLEK, not a VCEK.
	VLEK        bool
	CurrentTCB  kds.TCBVersion
	ReportedTCB kds.TCBVersion
}

// PlatformStatus runs SNP_PLATFORM_STATUS.
func PlatformStatus(d Device) (*Status, error) {
	b := make([]byte, snpStatusSize)
	fw, err := d.Issue(cmdSNPPlatformStatus, b, nil)
	if err != nil {
		return nil, fmt.Errorf("SNP_PLATFORM_STATUS: %w (firmware error %#x)", err, fw)
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (*Status, error) {
	if len(b) < snpStatusSize {
		return nil, errors.New("SNP platform status is too short")
	}
	flags := binary.LittleEndian.Uint32(b[8:])
	return &Status{
		APIMajor: b[0], APIMinor: b[1], State: b[2],
		BuildID:     binary.LittleEndian.Uint32(b[4:]),
		MaskChipID:  flags&1 != 0,
		VLEK:        flags&4 != 0,
		CurrentTCB:  kds.TCBVersion(binary.LittleEndian.Uint64(b[16:])),
		ReportedTCB: kds.TCBVersion(binary.LittleEndian.Uint64(b[24:])),
	}, nil
}

// ChipID runs SEV_GET_ID2.
func ChipID(d Device) ([abi.ChipIDSize]byte, error) {
	var id [abi.ChipIDSize]byte
	buf := make([]byte, abi.ChipIDSize)
	// struct sev_user_data_get_id2 { __u64 address; __u32 length; } __packed
	req := make([]byte, 12)
	binary.LittleEndian.PutUint32(req[8:], uint32(len(buf)))
	fw, err := d.Issue(cmdGetID2, req, buf)
	if err != nil {
		return id, fmt.Errorf("SEV_GET_ID2: %w (firmware error %#x)", err, fw)
	}
	if n := binary.LittleEndian.Uint32(req[8:]); n != uint32(len(buf)) {
		return id, fmt.Errorf("SEV_GET_ID2 returned a %d-byte ID, want %d", n, len(buf))
	}
	copy(id[:], buf)
	return id, nil
}

// HostIdentity is the VCEK identity of this host's guests: the chip ID,
// the TCB the firmware reports in guest reports, and the product line from
// the CPU's family and model (cpuid is the host's CPUID instruction).
func HostIdentity(d Device, cpuid func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)) (snp.Identity, error) {
	st, err := PlatformStatus(d)
	if err != nil {
		return snp.Identity{}, err
	}
	if st.VLEK {
		return snp.Identity{}, errors.New("this platform signs reports with a VLEK (from the cloud provider), not a VCEK; load the VLEK into the host instead")
	}
	if st.MaskChipID {
		return snp.Identity{}, errors.New("the SNP firmware masks the chip ID (MASK_CHIP_ID), so no VCEK can be selected for it")
	}
	id, err := ChipID(d)
	if err != nil {
		return snp.Identity{}, err
	}
	pl := ""
	if cpuid != nil {
		eax, _, _, _ := cpuid(1, 0)
		pl = kds.ProductLineFromFms(eax)
	}
	if pl == "" || pl == "Unknown" {
		return snp.Identity{}, errors.New("this CPU is not an AMD EPYC of a product line with SEV-SNP VCEKs (Milan, Genoa, Turin)")
	}
	return snp.Identity{ChipID: id, ReportedTCB: st.ReportedTCB, ProductLine: pl}, nil
}
