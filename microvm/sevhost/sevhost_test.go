package sevhost

import (
	"encoding/binary"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-sev-guest/kds"
)

// fakeSEV is /dev/sev as the kernel's sev-dev.c answers SEV_ISSUE_CMD: it
// writes struct sev_user_data_snp_status (32 bytes) to data for
// SNP_PLATFORM_STATUS, and for SEV_GET_ID2 reads struct
// sev_user_data_get_id2 at data, writes the 64-byte ID to its address (or
// the needed length with EIO when the buffer is too small). The buffer
// comes as buf (see Device).
type fakeSEV struct {
	status [snpStatusSize]byte
	id     [64]byte
}

func (f *fakeSEV) Issue(cmd uint32, arg, buf []byte) (uint32, error) {
	switch cmd {
	case cmdSNPPlatformStatus:
		if len(arg) < snpStatusSize {
			return 0, syscall.EFAULT
		}
		copy(arg, f.status[:])
		return 0, nil
	case cmdGetID2:
		if len(arg) < 12 {
			return 0, syscall.EFAULT
		}
		n := binary.LittleEndian.Uint32(arg[8:])
		if n < uint32(len(f.id)) || buf == nil || len(buf) < int(n) {
			binary.LittleEndian.PutUint32(arg[8:], uint32(len(f.id)))
			return 0x16, syscall.EIO // INVALID_LENGTH
		}
		copy(buf, f.id[:])
		binary.LittleEndian.PutUint32(arg[8:], uint32(len(f.id)))
		return 0, nil
	}
	return 0x3, syscall.EINVAL
}

func (f *fakeSEV) Close() error { return nil }

// genoaCPUID reports family 0x19 model 0x11 (Genoa).
func genoaCPUID(leaf, _ uint32) (uint32, uint32, uint32, uint32) {
	if leaf == 1 {
		return 0x00a10f11, 0, 0, 0
	}
	return 0, 0, 0, 0
}

func TestHostIdentity(t *testing.T) {
	f := &fakeSEV{}
	f.status[0], f.status[1], f.status[2] = 1, 55, 1
	tcb := kds.TCBVersion(0xdb18000000000004)
	binary.LittleEndian.PutUint64(f.status[24:], uint64(tcb))
	binary.LittleEndian.PutUint64(f.status[16:], uint64(tcb)+1)
	for i := range f.id {
		f.id[i] = byte(i)
	}
	id, err := HostIdentity(f, genoaCPUID)
	if err != nil {
		t.Fatal(err)
	}
	if id.ChipID != f.id || id.ReportedTCB != tcb || id.ProductLine != "Genoa" {
		t.Fatalf("identity %+v", id)
	}
	st, _ := PlatformStatus(f)
	if st.APIMajor != 1 || st.APIMinor != 55 || st.CurrentTCB != tcb+1 {
		t.Fatalf("status %+v", st)
	}

	f.status[8] = 1 // MASK_CHIP_ID
	if _, err := HostIdentity(f, genoaCPUID); err == nil || !strings.Contains(err.Error(), "masks the chip ID") {
		t.Fatalf("masked chip ID: %v", err)
	}
	f.status[8] = 4 // VLEK
	if _, err := HostIdentity(f, genoaCPUID); err == nil || !strings.Contains(err.Error(), "VLEK") {
		t.Fatalf("VLEK: %v", err)
	}
	f.status[8] = 0
	if _, err := HostIdentity(f, func(uint32, uint32) (uint32, uint32, uint32, uint32) { return 0x000906ea, 0, 0, 0 }); err == nil {
		t.Fatal("a CPU of no SNP product line was accepted")
	}
}

// TestIoctlNumber pins _IOWR('S', 0x0, struct sev_issue_cmd) from
// psp-sev.h.
func TestIoctlNumber(t *testing.T) {
	if sevIssueCmd != 0xc0105300 {
		t.Fatalf("SEV_ISSUE_CMD = %#x", sevIssueCmd)
	}
}
