package tdx

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/internal/atomicfile"
)

// DefaultCacheDir is the TDX collateral cache directory.
const DefaultCacheDir = "/var/cache/intel-tdx"

// CollateralFile is the cache file: DER
//
//	SEQUENCE { crls CrlList, tcb TcbPackage, qeIdentity TcbPackage }
//
// One file written atomically, so a reader never sees a mix of old and new
// collateral.
const CollateralFile = "collateral.der"

// Collateral is what a TdxEvidence carries besides the quote.
type Collateral struct {
	CRLs       envelope.CrlList
	TCB        envelope.TcbPackage
	QEIdentity envelope.TcbPackage
}

// Cache is the on-disk TDX collateral cache; writes are atomic.
type Cache struct {
	Dir string
}

// Collateral reads the cached collateral.
func (c *Cache) Collateral() (*Collateral, error) {
	p := filepath.Join(c.Dir, CollateralFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no TDX collateral at %s; run `enarx platform tdx fetch`", p)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cached TDX collateral: %w", err)
	}
	col, err := decodeCollateral(b)
	if err != nil {
		return nil, fmt.Errorf("cached TDX collateral %s is corrupt (run `enarx platform tdx fetch`): %w", p, err)
	}
	return col, nil
}

func decodeCollateral(b []byte) (*Collateral, error) {
	var parts []asn1.RawValue
	rest, err := asn1.Unmarshal(b, &parts)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 || len(parts) != 3 {
		return nil, errors.New("want SEQUENCE { CrlList, TcbPackage, TcbPackage }")
	}
	var col Collateral
	if col.CRLs, err = envelope.DecodeCrlList(parts[0].FullBytes); err != nil {
		return nil, err
	}
	if col.TCB, err = envelope.DecodeTcbPackage(parts[1].FullBytes); err != nil {
		return nil, err
	}
	if col.QEIdentity, err = envelope.DecodeTcbPackage(parts[2].FullBytes); err != nil {
		return nil, err
	}
	return &col, nil
}

// Put stores collateral (atomically, in one file).
func (c *Cache) Put(col *Collateral) error {
	crls, err := col.CRLs.Marshal()
	if err != nil {
		return err
	}
	tcb, err := col.TCB.Marshal()
	if err != nil {
		return err
	}
	qe, err := col.QEIdentity.Marshal()
	if err != nil {
		return err
	}
	der, err := asn1.Marshal([]asn1.RawValue{{FullBytes: crls}, {FullBytes: tcb}, {FullBytes: qe}})
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(c.Dir, CollateralFile), der, 0o644)
}
