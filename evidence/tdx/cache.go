package tdx

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/internal/atomicfile"
	"github.com/enarx-go/enarx/internal/readlimit"
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

// maxCollateralFile bounds the cache file. The cache may sit on a disk the
// host can write (or arrive from the host, in a microVM Keep), so it is read
// only up to what Put writes: four PCS answers of at most maxPCSBody bytes
// each with their issuer chains fit several times over (real ones are
// tens of KiB).
const maxCollateralFile = 8 << 20

// Collateral reads the cached collateral.
func (c *Cache) Collateral() (*Collateral, error) {
	p := filepath.Join(c.Dir, CollateralFile)
	b, err := readCacheFile(p, maxCollateralFile)
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

// readCacheFile reads the cache file p if it is a regular file of at most
// limit bytes: a larger one is an error after limit+1 bytes, anything else
// (a link to /dev/zero, a FIFO the host planted) one at once.
func readCacheFile(p string, limit int64) ([]byte, error) {
	b, err := readlimit.File(p, limit)
	switch {
	case errors.Is(err, readlimit.ErrTooLarge):
		return nil, fmt.Errorf("%w, more than any collateral `enarx platform tdx fetch` writes (delete it and fetch again)", err)
	case errors.Is(err, readlimit.ErrNotRegular):
		return nil, fmt.Errorf("%w, where `enarx platform tdx fetch` writes one (delete it and fetch again)", err)
	}
	return b, err
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
	if len(der) > maxCollateralFile {
		return fmt.Errorf("refusing to cache %d bytes of TDX collateral, more than the %d a Keep reads", len(der), maxCollateralFile)
	}
	return atomicfile.Write(filepath.Join(c.Dir, CollateralFile), der, 0o644)
}
