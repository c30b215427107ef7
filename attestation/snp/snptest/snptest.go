// Package snptest builds emulated SEV-SNP evidence for tests: an ARK/ASK/VCEK
// chain from go-sev-guest's test-only keys, CRLs signed by that ARK, and
// reports signed by that VCEK. A verifier must be told to trust the chain
// (snp.Options.Roots with Emulated set); AMD's roots never accept it.
//
// Test helper only: it uses fixed, published private keys.
package snptest

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/snp"
)

// Fake is an emulated AMD signing hierarchy for the Milan product line.
type Fake struct {
	signer *sevtest.AmdSigner
}

// Config chooses what the emulated VCEK certifies.
type Config struct {
	Created   time.Time    // ARK/ASK/VCEK notBefore
	TCB       kds.TCBParts // the VCEK's TCB
	HWID      [64]byte     // the VCEK's hwID (the report's CHIP_ID)
	ASKSerial *big.Int     // nil: go-sev-guest's default
}

// New builds an emulated ARK → ASK → VCEK chain.
func New(c Config) (*Fake, error) {
	b := &sevtest.AmdSignerBuilder{
		Keys:             sevtest.DefaultAmdKeys(),
		ProductName:      "Milan-B0",
		ArkCreationTime:  c.Created,
		AskCreationTime:  c.Created,
		AsvkCreationTime: c.Created,
		VcekCreationTime: c.Created,
		VlekCreationTime: c.Created,
		HWID:             c.HWID,
		VcekCustom: sevtest.CertOverride{
			Extensions: sevtest.CustomExtensions(c.TCB, c.HWID[:], "", "Milan-B0"),
		},
		AskCustom: sevtest.CertOverride{SerialNumber: c.ASKSerial},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, fmt.Errorf("snptest: %w", err)
	}
	return &Fake{signer: s}, nil
}

// Root is the emulated root for snp.Options.Roots.
func (f *Fake) Root() snp.Root {
	return snp.Root{ProductLine: "Milan", ARK: f.signer.Ark, ASK: f.signer.Ask, Emulated: true}
}

// VCEK is the emulated VCEK certificate (DER).
func (f *Fake) VCEK() []byte { return f.signer.Vcek.Raw }

// CRLURL is the URL the ASK names as its CRL distribution point.
func (f *Fake) CRLURL() string { return f.signer.Ask.CRLDistributionPoints[0] }

// CRL returns a CRL signed by the emulated ARK revoking serials.
func (f *Fake) CRL(thisUpdate, nextUpdate time.Time, revoked ...*big.Int) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		SignatureAlgorithm:        x509.SHA384WithRSAPSS,
		Number:                    big.NewInt(1),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, f.signer.Ark, f.signer.Keys.Ark)
	if err != nil {
		return nil, fmt.Errorf("snptest: CRL: %w", err)
	}
	return der, nil
}

// ASKSerial is the emulated ASK's serial number.
func (f *Fake) ASKSerial() *big.Int { return f.signer.Ask.SerialNumber }

// Sign writes an ECDSA P-384 signature by the emulated VCEK into report
// (0x2A0..0x330, little-endian R and S) and sets SIGNATURE_ALGO to 1.
func (f *Fake) Sign(report []byte) error {
	if len(report) != abi.ReportSize {
		return fmt.Errorf("snptest: report is %d bytes", len(report))
	}
	binary.LittleEndian.PutUint32(report[0x34:], abi.SignEcdsaP384Sha384)
	r, s, err := f.signer.Sign(abi.SignedComponent(report))
	if err != nil {
		return fmt.Errorf("snptest: sign: %w", err)
	}
	clear(report[0x2A0:0x330])
	putLE(report[0x2A0:0x2A0+72], r)
	putLE(report[0x2E8:0x2E8+72], s)
	return nil
}

func putLE(dst []byte, v *big.Int) {
	be := v.Bytes()
	for i := range be {
		dst[i] = be[len(be)-1-i]
	}
}

// Evidence wraps a signed report with the emulated VCEK and crls.
func (f *Fake) Evidence(report []byte, crls envelope.CrlList) ([]byte, error) {
	return (&envelope.SnpEvidence{VCEK: f.VCEK(), CRLs: crls, Report: report}).Marshal()
}

// Extension returns the CSR extension for evidence.
func Extension(evidence []byte) pkix.Extension {
	return pkix.Extension{Id: []int{1, 3, 6, 1, 4, 1, 58270, 1, 3}, Value: evidence}
}
