package snp

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/internal/atomicfile"
	"github.com/enarx-go/enarx/internal/readlimit"
)

// DefaultCacheDir is upstream Enarx's collateral cache directory.
const DefaultCacheDir = "/var/cache/amd-sev"

// CRLFile is the CrlList cache file, upstream-compatible.
const CRLFile = "crls.der"

// Identity is what selects a VCEK: the chip and the TCB it reported.
type Identity struct {
	ChipID      [abi.ChipIDSize]byte
	ReportedTCB kds.TCBVersion
	ProductLine string // "Milan", "Genoa", "Turin"
}

// IdentifyReport extracts the VCEK identity from a raw report.
func IdentifyReport(raw []byte) (Identity, error) {
	rep, err := abi.ReportToProto(raw)
	if err != nil {
		return Identity{}, fmt.Errorf("parsing SEV-SNP report: %w", err)
	}
	var id Identity
	copy(id.ChipID[:], rep.GetChipId())
	id.ReportedTCB = kds.TCBVersion(rep.GetReportedTcb())
	id.ProductLine = "Milan"
	if rep.GetVersion() >= 3 && rep.GetCpuid1EaxFms() != 0 {
		if pl := kds.ProductLineFromFms(rep.GetCpuid1EaxFms()); pl != "" {
			id.ProductLine = pl
		}
	}
	return id, nil
}

// Cache is the on-disk SNP collateral cache. Writes are atomic (temporary
// file, fsync, rename), so concurrent readers never see partial files.
type Cache struct {
	Dir string
	// Now is the clock for expiry reports; nil means time.Now.
	Now func() time.Time
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// VCEKFile is the cache file name of a VCEK, upstream's naming:
// vcek-{chipid}-{bl}-{tee}-{snp}-{ucode}.
func VCEKFile(id Identity) string {
	p := kds.DecomposeTCBVersion(id.ReportedTCB)
	return fmt.Sprintf("vcek-%s-%d-%d-%d-%d", hex.EncodeToString(id.ChipID[:]), p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
}

// Bounds on cache files. The cache may sit on a disk the host can write
// (or arrive from the host, in a microVM Keep), so a file is read only up
// to what `enarx platform snp fetch` can have written: a VCEK of at most
// maxKDSBody bytes, a CrlList of three such CRLs.
const (
	maxVCEKFile = maxKDSBody
	maxCRLFile  = 1 << 20
)

// readCacheFile reads the cache file p if it is a regular file of at most
// limit bytes: a larger one is an error after limit+1 bytes, anything else
// (a link to /dev/zero, a FIFO the host planted) one at once.
func readCacheFile(p string, limit int64) ([]byte, error) {
	b, err := readlimit.File(p, limit)
	switch {
	case errors.Is(err, readlimit.ErrTooLarge):
		return nil, fmt.Errorf("%w, more than any collateral `enarx platform snp fetch` writes (delete it and fetch again)", err)
	case errors.Is(err, readlimit.ErrNotRegular):
		return nil, fmt.Errorf("%w, where `enarx platform snp fetch` writes one (delete it and fetch again)", err)
	}
	return b, err
}

// VCEK returns the cached VCEK DER for id.
func (c *Cache) VCEK(id Identity) ([]byte, error) {
	p := filepath.Join(c.Dir, VCEKFile(id))
	b, err := readCacheFile(p, maxVCEKFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no VCEK cached for this chip and TCB (%s); run `enarx platform snp fetch` inside the guest", p)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cached VCEK: %w", err)
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("cached VCEK %s is not a certificate (delete it and run `enarx platform snp fetch`): %w", p, err)
	}
	return b, nil
}

// PutVCEK stores a VCEK for id.
func (c *Cache) PutVCEK(id Identity, der []byte) error {
	if _, err := x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("refusing to cache a VCEK that is not a certificate: %w", err)
	}
	return atomicfile.Write(filepath.Join(c.Dir, VCEKFile(id)), der, 0o644)
}

// CRLs returns the cached CrlList.
func (c *Cache) CRLs() (envelope.CrlList, error) {
	p := filepath.Join(c.Dir, CRLFile)
	b, err := readCacheFile(p, maxCRLFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no AMD CRLs cached at %s; run `enarx platform snp fetch`", p)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cached AMD CRLs: %w", err)
	}
	l, err := envelope.DecodeCrlList(b)
	if err != nil {
		return nil, fmt.Errorf("cached AMD CRLs %s are corrupt (run `enarx platform snp fetch`): %w", p, err)
	}
	return l, nil
}

// PutCRLs stores the CrlList.
func (c *Cache) PutCRLs(l envelope.CrlList) error {
	der, err := l.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(c.Dir, CRLFile), der, 0o644)
}

// Entry describes one cached file for `enarx platform snp status`.
type Entry struct {
	Name       string
	Kind       string // "vcek" or "crl"
	Subject    string // VCEK subject or CRL issuer / URL
	NextUpdate time.Time
	Expired    bool
}

// List describes what is cached and when it expires.
func (c *Cache) List() ([]Entry, error) {
	ents, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := c.now()
	var out []Entry
	for _, e := range ents {
		name := e.Name()
		switch {
		case name == CRLFile:
			l, err := c.CRLs()
			if err != nil {
				out = append(out, Entry{Name: name, Kind: "crl", Subject: "corrupt: " + err.Error(), Expired: true})
				continue
			}
			for _, ent := range l {
				crl, err := x509.ParseRevocationList(ent.CRL)
				if err != nil {
					out = append(out, Entry{Name: name, Kind: "crl", Subject: ent.URL + " (unparsable)", Expired: true})
					continue
				}
				out = append(out, Entry{Name: name, Kind: "crl", Subject: ent.URL, NextUpdate: crl.NextUpdate, Expired: now.After(crl.NextUpdate)})
			}
		case len(name) > 5 && name[:5] == "vcek-" && filepath.Ext(name) == "":
			b, err := readCacheFile(filepath.Join(c.Dir, name), maxVCEKFile)
			if err != nil {
				out = append(out, Entry{Name: name, Kind: "vcek", Subject: "unreadable: " + err.Error(), Expired: true})
				continue
			}
			cert, err := x509.ParseCertificate(b)
			if err != nil {
				out = append(out, Entry{Name: name, Kind: "vcek", Subject: "unparsable", Expired: true})
				continue
			}
			out = append(out, Entry{Name: name, Kind: "vcek", Subject: cert.Subject.String(), NextUpdate: cert.NotAfter, Expired: now.After(cert.NotAfter)})
		}
	}
	return out, nil
}
