package emulated

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// SNPRootFile is the file (in the emulation directory) holding the emulated
// AMD keys and certificates as PEM blocks.
const SNPRootFile = "snp-root.pem"

// ProductLine is the AMD product line the emulated chain imitates.
const ProductLine = "Milan"

// Emulated firmware and TCB values (plausible Milan values; all in policy
// range of the examples in docs/policy.md).
var (
	emulatedTCB = kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}
	// ABI 1.51, SMT allowed, reserved bit 17 set (required by the ABI).
	emulatedPolicy = uint64(51) | 1<<8 | 1<<16 | 1<<17
)

// SNPRoot is an emulated AMD key hierarchy: ARK → ASK → VCEK.
type SNPRoot struct {
	ARK, ASK, VCEK *x509.Certificate
	arkKey, askKey *rsa.PrivateKey
	vcekKey        *ecdsa.PrivateKey
	ChipID         [abi.ChipIDSize]byte
	mu             sync.Mutex
	crlDER         []byte
	crlNext        time.Time
}

// DefaultDir is where the emulated roots live: <user config dir>/enarx/emulated.
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("locating the user config directory for the emulated TEE root: %w", err)
	}
	return filepath.Join(d, "enarx", "emulated"), nil
}

func amdName(cn, serial string) pkix.Name {
	return pkix.Name{
		Organization: []string{"Advanced Micro Devices"}, Country: []string{"US"},
		OrganizationalUnit: []string{"Engineering"}, Locality: []string{"Santa Clara"},
		Province: []string{"CA"}, SerialNumber: serial, CommonName: cn,
	}
}

// NewSNPRoot generates a fresh emulated hierarchy (slow: two RSA-4096 keys).
func NewSNPRoot() (*SNPRoot, error) {
	ark, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		return nil, err
	}
	ask, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		return nil, err
	}
	vcek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	r := &SNPRoot{arkKey: ark, askKey: ask, vcekKey: vcek}
	if _, err := rand.Read(r.ChipID[:]); err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	crlURL := CRLURL()
	serial := big.NewInt(0xe0de1a7e)
	arkTmpl := &x509.Certificate{
		Version: 3, SerialNumber: serial, SignatureAlgorithm: x509.SHA384WithRSAPSS,
		Subject: amdName("ARK-"+ProductLine, fmt.Sprintf("%x", serial)), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true,
		CRLDistributionPoints: []string{crlURL},
	}
	arkTmpl.Issuer = arkTmpl.Subject
	if r.ARK, err = create(arkTmpl, arkTmpl, &ark.PublicKey, ark); err != nil {
		return nil, fmt.Errorf("emulated ARK: %w", err)
	}
	askTmpl := &x509.Certificate{
		Version: 3, SerialNumber: serial, SignatureAlgorithm: x509.SHA384WithRSAPSS,
		Subject: amdName("SEV-"+ProductLine, fmt.Sprintf("%x", serial)), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		CRLDistributionPoints: []string{crlURL},
	}
	if r.ASK, err = create(askTmpl, r.ARK, &ask.PublicKey, ark); err != nil {
		return nil, fmt.Errorf("emulated ASK: %w", err)
	}
	vcekTmpl := &x509.Certificate{
		Version: 3, SerialNumber: big.NewInt(0), SignatureAlgorithm: x509.SHA384WithRSAPSS,
		Subject: amdName("SEV-VCEK", "0"), NotBefore: now, NotAfter: now.AddDate(7, 0, 0),
		ExtraExtensions: vcekExtensions(emulatedTCB, r.ChipID[:]),
	}
	if r.VCEK, err = create(vcekTmpl, r.ASK, &vcek.PublicKey, ask); err != nil {
		return nil, fmt.Errorf("emulated VCEK: %w", err)
	}
	return r, nil
}

func create(tmpl, parent *x509.Certificate, pub any, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// vcekExtensions are the KDS VCEK extensions (AMD spec 57230).
func vcekExtensions(tcb kds.TCBParts, hwid []byte) []pkix.Extension {
	i := func(v uint8) []byte { b, _ := asn1.Marshal(int(v)); return b }
	zero, _ := asn1.Marshal(0)
	product, _ := asn1.MarshalWithParams(ProductLine+"-B1", "ia5")
	hw, _ := asn1.Marshal(hwid)
	return []pkix.Extension{
		{Id: kds.OidStructVersion, Value: zero},
		{Id: kds.OidProductName1, Value: product},
		{Id: kds.OidBlSpl, Value: i(tcb.BlSpl)},
		{Id: kds.OidTeeSpl, Value: i(tcb.TeeSpl)},
		{Id: kds.OidSnpSpl, Value: i(tcb.SnpSpl)},
		{Id: kds.OidSpl4, Value: i(tcb.Spl4)},
		{Id: kds.OidSpl5, Value: i(tcb.Spl5)},
		{Id: kds.OidSpl6, Value: i(tcb.Spl6)},
		{Id: kds.OidSpl7, Value: i(tcb.Spl7)},
		{Id: kds.OidUcodeSpl, Value: i(tcb.UcodeSpl)},
		{Id: kds.OidHwid, Value: hw},
	}
}

// LoadOrCreateSNPRoot loads the emulated hierarchy from dir, generating and
// saving it (0600) on first use.
func LoadOrCreateSNPRoot(dir string) (*SNPRoot, error) {
	return loadOrCreate(filepath.Join(dir, SNPRootFile), "emulated SNP root", func() ([]byte, error) {
		r, err := NewSNPRoot()
		if err != nil {
			return nil, err
		}
		return r.marshal()
	}, parseSNPRoot)
}

func (r *SNPRoot) marshal() ([]byte, error) {
	var out []byte
	add := func(typ string, der []byte) {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
	}
	for _, k := range []crypto.Signer{r.arkKey, r.askKey, r.vcekKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		add("PRIVATE KEY", der)
	}
	add("CERTIFICATE", r.ARK.Raw)
	add("CERTIFICATE", r.ASK.Raw)
	add("CERTIFICATE", r.VCEK.Raw)
	return out, nil
}

func parseSNPRoot(b []byte) (*SNPRoot, error) {
	var keys []any
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, err
			}
			certs = append(certs, c)
		}
	}
	if len(keys) != 3 || len(certs) != 3 {
		return nil, fmt.Errorf("want 3 keys and 3 certificates, found %d and %d", len(keys), len(certs))
	}
	ark, ok1 := keys[0].(*rsa.PrivateKey)
	ask, ok2 := keys[1].(*rsa.PrivateKey)
	vcek, ok3 := keys[2].(*ecdsa.PrivateKey)
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New("unexpected key types")
	}
	r := &SNPRoot{arkKey: ark, askKey: ask, vcekKey: vcek, ARK: certs[0], ASK: certs[1], VCEK: certs[2]}
	exts, err := kds.VcekCertificateExtensions(r.VCEK)
	if err != nil {
		return nil, fmt.Errorf("emulated VCEK: %w", err)
	}
	copy(r.ChipID[:], exts.HWID)
	return r, nil
}

// ARKPEM returns the emulated ARK certificate as PEM: what a Steward policy
// names to trust this emulated hierarchy.
func (r *SNPRoot) ARKPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.ARK.Raw})
}

// ASKPEM returns the emulated ASK certificate as PEM.
func (r *SNPRoot) ASKPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.ASK.Raw})
}

// CRLURL is where the emulated ASK says its CRL is: AMD's KDS URL for the
// product line, under which evidence carries the emulated ARK's CRL.
func CRLURL() string { return kds.CrlLinkByKey(ProductLine, abi.VcekReportSigner) }

// CRL returns an empty CRL signed by the emulated ARK, valid for a week;
// regenerated when it gets old.
func (r *SNPRoot) CRL(now time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.crlDER != nil && now.Add(24*time.Hour).Before(r.crlNext) {
		return r.crlDER, nil
	}
	next := now.Add(7 * 24 * time.Hour)
	der, err := r.SignCRL(now.Add(-time.Hour), next)
	if err != nil {
		return nil, err
	}
	r.crlDER, r.crlNext = der, next
	return der, nil
}

// SignCRL returns a CRL signed by the emulated ARK for thisUpdate to
// nextUpdate, revoking the given serial numbers (tests revoke r.ASK's).
func (r *SNPRoot) SignCRL(thisUpdate, nextUpdate time.Time, revoked ...*big.Int) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		SignatureAlgorithm:        x509.SHA384WithRSAPSS,
		Number:                    big.NewInt(thisUpdate.Unix()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, r.ARK, r.arkKey)
	if err != nil {
		return nil, fmt.Errorf("emulated AMD CRL: %w", err)
	}
	return der, nil
}

// SNPOptions describe the emulated guest.
type SNPOptions struct {
	// Measurement is the launch measurement to report (48 bytes); see
	// Measurement for what the emulated backend uses.
	Measurement [48]byte
	// Debug sets the policy DEBUG bit (for negative tests).
	Debug bool
	// GuestSVN is the guest security version.
	GuestSVN uint32
}

// SignReport builds and signs a version-2 ATTESTATION_REPORT.
func (r *SNPRoot) SignReport(reportData [64]byte, o SNPOptions) ([]byte, error) {
	tcb, err := kds.ComposeTCBParts(emulatedTCB)
	if err != nil {
		return nil, err
	}
	policy := emulatedPolicy
	if o.Debug {
		policy |= 1 << 19
	}
	var reportID [32]byte
	if _, err := rand.Read(reportID[:]); err != nil {
		return nil, err
	}
	ma := make([]byte, 32)
	for i := range ma {
		ma[i] = 0xff
	}
	rep := &spb.Report{
		Version: 2, GuestSvn: o.GuestSVN, Policy: policy,
		FamilyId: make([]byte, 16), ImageId: make([]byte, 16), Vmpl: 0, SignatureAlgo: 1,
		CurrentTcb: uint64(tcb), PlatformInfo: 1, ReportData: reportData[:], Measurement: o.Measurement[:],
		HostData: make([]byte, 32), IdKeyDigest: make([]byte, 48), AuthorKeyDigest: make([]byte, 48),
		ReportId: reportID[:], ReportIdMa: ma, ReportedTcb: uint64(tcb), ChipId: r.ChipID[:],
		CommittedTcb: uint64(tcb), CurrentBuild: 3, CurrentMinor: 55, CurrentMajor: 1,
		CommittedBuild: 3, CommittedMinor: 55, CommittedMajor: 1, LaunchTcb: uint64(tcb),
		Signature: make([]byte, abi.SignatureSize),
	}
	raw, err := abi.ReportToAbiBytes(rep)
	if err != nil {
		return nil, fmt.Errorf("encoding emulated SNP report: %w", err)
	}
	if err := r.Sign(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Sign signs a raw ATTESTATION_REPORT in place with the emulated VCEK:
// SIGNATURE_ALGO becomes ECDSA P-384 with SHA-384 and the signature is
// replaced. Tests use it to sign reports they changed.
func (r *SNPRoot) Sign(report []byte) error {
	if len(report) != abi.ReportSize {
		return fmt.Errorf("emulated SNP signature: the report is %d bytes, want %d", len(report), abi.ReportSize)
	}
	binary.LittleEndian.PutUint32(report[0x34:], abi.SignEcdsaP384Sha384)
	h := sha512.Sum384(abi.SignedComponent(report))
	R, S, err := ecdsa.Sign(rand.Reader, r.vcekKey, h[:])
	if err != nil {
		return err
	}
	return abi.SetSignature(R, S, report)
}

// SNPProvider is the emulated SNP attest.EvidenceProvider: upstream's
// SnpEvidence envelope around a report signed by the emulated VCEK.
type SNPProvider struct {
	Root    *SNPRoot
	Options SNPOptions
	// Now is the clock for the CRL; nil means time.Now.
	Now func() time.Time
}

var _ attest.EvidenceProvider = (*SNPProvider)(nil)

// Kind implements attest.EvidenceProvider.
func (*SNPProvider) Kind() attest.Kind { return attest.KindSNP }

// Evidence implements attest.EvidenceProvider.
func (p *SNPProvider) Evidence(_ context.Context, reportData [64]byte) ([]byte, error) {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	raw, err := p.Root.SignReport(reportData, p.Options)
	if err != nil {
		return nil, err
	}
	crl, err := p.Root.CRL(now)
	if err != nil {
		return nil, err
	}
	ev := envelope.SnpEvidence{
		VCEK:   p.Root.VCEK.Raw,
		CRLs:   envelope.CrlList{{URL: CRLURL(), CRL: crl}},
		Report: raw,
	}
	return ev.Marshal()
}

// Measurement is what the emulated backend reports as the launch
// measurement: SHA-384 of the running enarx executable, the analogue of a
// confidential VM's launch digest (the code that runs the Keep).
func Measurement() ([48]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return [48]byte{}, fmt.Errorf("locating the enarx executable: %w", err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		return [48]byte{}, fmt.Errorf("measuring the enarx executable: %w", err)
	}
	return sha512.Sum384(b), nil
}
