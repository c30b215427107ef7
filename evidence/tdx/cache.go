package tdx

import (
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

// Cache file names (DER: CrlList, TcbPackage, TcbPackage).
const (
	CRLFile        = "crls.der"
	TCBFile        = "tcb.der"
	QEIdentityFile = "qe-identity.der"
)

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

func (c *Cache) read(name string) ([]byte, error) {
	p := filepath.Join(c.Dir, name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no TDX collateral at %s; run `enarx platform tdx fetch`", p)
	}
	return b, err
}

// Collateral reads the cached collateral.
func (c *Cache) Collateral() (*Collateral, error) {
	var col Collateral
	b, err := c.read(CRLFile)
	if err != nil {
		return nil, err
	}
	if col.CRLs, err = envelope.DecodeCrlList(b); err != nil {
		return nil, fmt.Errorf("cached TDX CRLs are corrupt (run `enarx platform tdx fetch`): %w", err)
	}
	if b, err = c.read(TCBFile); err != nil {
		return nil, err
	}
	if col.TCB, err = envelope.DecodeTcbPackage(b); err != nil {
		return nil, fmt.Errorf("cached TDX TCB Info is corrupt (run `enarx platform tdx fetch`): %w", err)
	}
	if b, err = c.read(QEIdentityFile); err != nil {
		return nil, err
	}
	if col.QEIdentity, err = envelope.DecodeTcbPackage(b); err != nil {
		return nil, fmt.Errorf("cached TDX QE Identity is corrupt (run `enarx platform tdx fetch`): %w", err)
	}
	return &col, nil
}

// Put stores collateral.
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
	for name, b := range map[string][]byte{CRLFile: crls, TCBFile: tcb, QEIdentityFile: qe} {
		if err := atomicfile.Write(filepath.Join(c.Dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
