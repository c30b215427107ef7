package policy

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/tdx"
)

// tdxTable is the `[tdx]` table (ours; upstream has no TDX support).
type tdxTable struct {
	MRTD             []string `toml:"mrtd"`
	MRSEAM           []string `toml:"mrseam"`
	MRConfigID       []string `toml:"mrconfigid"`
	MROwner          []string `toml:"mrowner"`
	RTMR0            []string `toml:"rtmr0"`
	RTMR1            []string `toml:"rtmr1"`
	RTMR2            []string `toml:"rtmr2"`
	RTMR3            []string `toml:"rtmr3"`
	TDAttributes     *string  `toml:"td_attributes"`
	AllowDebug       bool     `toml:"allow_debug"`
	AllowAnyKernel   bool     `toml:"allow_any_kernel"`
	MinimumTEETCBSVN *string  `toml:"minimum_tee_tcb_svn"`
	MinimumQESVN     *int64   `toml:"minimum_qe_svn"`
	MinimumPCESVN    *int64   `toml:"minimum_pce_svn"`
	// EmulatedRoot is the PEM root certificate of enarx's tdx-emulated
	// backend; see docs/confidential-vms.md. Never set it in production.
	EmulatedRoot *string `toml:"emulated_root"`
}

func fixedHex(key, s string, size int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("%s: %q is not %d bytes of hex (%d digits)", key, s, size, 2*size)
	}
	return b, nil
}

func (t *tdxTable) compile() (*tdx.Policy, error) {
	p := &tdx.Policy{AllowDebug: t.AllowDebug}
	var err error
	for _, d := range []struct {
		key string
		in  []string
		out *[][]byte
	}{
		{"tdx.mrtd", t.MRTD, &p.MRTD},
		{"tdx.mrseam", t.MRSEAM, &p.MRSEAM},
		{"tdx.mrconfigid", t.MRConfigID, &p.MRConfigID},
		{"tdx.mrowner", t.MROwner, &p.MROwner},
		{"tdx.rtmr0", t.RTMR0, &p.RTMR[0]},
		{"tdx.rtmr1", t.RTMR1, &p.RTMR[1]},
		{"tdx.rtmr2", t.RTMR2, &p.RTMR[2]},
		{"tdx.rtmr3", t.RTMR3, &p.RTMR[3]},
	} {
		if *d.out, err = digests(d.key, d.in, 48); err != nil {
			return nil, err
		}
	}
	if t.TDAttributes != nil {
		if p.TDAttributes, err = fixedHex("tdx.td_attributes", *t.TDAttributes, 8); err != nil {
			return nil, err
		}
		if p.TDAttributes[0]&1 != 0 && !t.AllowDebug {
			return nil, fmt.Errorf("tdx.td_attributes: %s sets DEBUG; set tdx.allow_debug = true to accept debuggable TDs", *t.TDAttributes)
		}
	}
	if t.MinimumTEETCBSVN != nil {
		if p.MinimumTEETCBSVN, err = fixedHex("tdx.minimum_tee_tcb_svn", *t.MinimumTEETCBSVN, 16); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		key string
		in  *int64
		out *uint16
	}{{"tdx.minimum_qe_svn", t.MinimumQESVN, &p.MinimumQESVN}, {"tdx.minimum_pce_svn", t.MinimumPCESVN, &p.MinimumPCESVN}} {
		if err := inRange(c.key, c.in, 0, 0xffff); err != nil {
			return nil, err
		}
		if c.in != nil {
			*c.out = uint16(*c.in)
		}
	}
	// As [snp] and [sgx] need signer, hash or hash_blacklist: a [tdx] table
	// must say which TDs pass, and only MRTD does. RTMRs are extended by
	// the TD's own firmware, MRSEAM is Intel's TDX module, MRCONFIGID and
	// MROWNER are chosen by the host; none of them alone pins the TD.
	if len(p.MRTD) == 0 {
		return nil, errors.New("tdx.mrtd: a [tdx] table must list the MRTDs of the TDs it accepts (`enarx platform tdx measurement` prints a Keep's); " +
			"rtmr0–3, mrseam, mrconfigid and mrowner alone do not pin the TD")
	}
	// MRTD covers the TDVF firmware only: the kernel is measured into
	// RTMR1, its command line and initrd (which hold enarx, in a tdx-vm
	// Keep) into RTMR2. Without them, any kernel and init the host boots
	// on that firmware pass, and may bind any key in REPORTDATA.
	if (len(p.RTMR[1]) == 0 || len(p.RTMR[2]) == 0) && !t.AllowAnyKernel {
		return nil, errors.New("tdx.rtmr1, tdx.rtmr2: MRTD covers only the TD's firmware; pin the kernel (rtmr1) and its command line and initrd (rtmr2) " +
			"from a measured launch (`enarx platform tdx measurement` in the TD prints them; a Steward's refusal names the TD's values), " +
			"or set tdx.allow_any_kernel = true to accept any kernel and init the host boots on that firmware")
	}
	return p, nil
}

func (p *Policy) tdxVerifier(opts Options) (attest.Verifier, error) {
	return tdx.New(tdx.Options{Policy: p.TDX, Roots: opts.TDXRoots, EmulatedRoots: p.TDXEmulatedRoots})
}
