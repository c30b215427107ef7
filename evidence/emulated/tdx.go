package emulated

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// TDXRootFile holds the emulated Intel hierarchy as PEM blocks.
const TDXRootFile = "tdx-root.pem"

// Intel endpoints the emulated collateral is keyed by (as real PCS data).
const (
	intelRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
	emulatedOU      = "Emulated by enarx - not Intel hardware"
)

// Emulated platform constants.
var (
	emulatedFMSPC      = []byte{0x00, 0x80, 0x6f, 0x05, 0x00, 0x00}
	emulatedPCEID      = []byte{0x00, 0x00}
	emulatedCPUSVN     = [16]byte{3, 3, 2, 2, 2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0}
	emulatedPCESVN     = uint16(13)
	emulatedTeeTCBSVN  = [16]byte{3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	emulatedQEVendor   = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}
	emulatedQEMRSigner = func() []byte { h := sha256.Sum256([]byte("enarx emulated TDX quoting enclave")); return h[:] }()
	qeAttributes       = []byte{0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	qeAttributesMask   = []byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}
)

const (
	qeISVProdID = 2
	qeISVSVN    = 4
)

// TDXRoot is an emulated Intel hierarchy: Root CA → PCK Platform CA → PCK
// certificate, Root CA → TCB Signing, plus the quoting enclave's
// attestation key.
type TDXRoot struct {
	Root, PCKCA, PCK, TCBSigning              *x509.Certificate
	rootKey, pckCAKey, pckKey, tcbKey, attKey *ecdsa.PrivateKey

	mu         sync.Mutex
	collateral *envelope.TdxEvidence // CRLs, TCB info, QE identity (no quote)
	colNext    time.Time
}

func intelName(cn string) pkix.Name {
	return pkix.Name{
		CommonName: cn, Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{emulatedOU},
		Locality: []string{"Santa Clara"}, Province: []string{"CA"}, Country: []string{"US"},
	}
}

func newP256() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// NewTDXRoot generates a fresh emulated hierarchy.
func NewTDXRoot() (*TDXRoot, error) {
	r := &TDXRoot{}
	for _, k := range []**ecdsa.PrivateKey{&r.rootKey, &r.pckCAKey, &r.pckKey, &r.tcbKey, &r.attKey} {
		var err error
		if *k, err = newP256(); err != nil {
			return nil, err
		}
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var err error
	rootT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX Root CA"), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true,
		CRLDistributionPoints: []string{intelRootCRLURL}, SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	if r.Root, err = create(rootT, rootT, &r.rootKey.PublicKey, r.rootKey); err != nil {
		return nil, fmt.Errorf("emulated Intel root: %w", err)
	}
	caT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX PCK Platform CA"), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		CRLDistributionPoints: []string{intelRootCRLURL}, SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	if r.PCKCA, err = create(caT, r.Root, &r.pckCAKey.PublicKey, r.rootKey); err != nil {
		return nil, fmt.Errorf("emulated PCK CA: %w", err)
	}
	sgxExt, err := pckSGXExtension()
	if err != nil {
		return nil, err
	}
	pckT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX PCK Certificate"), NotBefore: now, NotAfter: now.AddDate(7, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
		CRLDistributionPoints: []string{pcs.PckCrlURL("platform")}, SignatureAlgorithm: x509.ECDSAWithSHA256,
		ExtraExtensions: []pkix.Extension{sgxExt},
		// Intel PCK certificates carry exactly six extensions (AKI, CRL DP,
		// SKI, KU, BC, SGX); go-tdx-guest insists.
		SubjectKeyId: keyID(&r.pckKey.PublicKey),
	}
	if r.PCK, err = create(pckT, r.PCKCA, &r.pckKey.PublicKey, r.pckCAKey); err != nil {
		return nil, fmt.Errorf("emulated PCK certificate: %w", err)
	}
	tcbT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX TCB Signing"), NotBefore: now, NotAfter: now.AddDate(7, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
		CRLDistributionPoints: []string{intelRootCRLURL}, SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	if r.TCBSigning, err = create(tcbT, r.Root, &r.tcbKey.PublicKey, r.rootKey); err != nil {
		return nil, fmt.Errorf("emulated TCB signing certificate: %w", err)
	}
	return r, nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha256.Sum256(b)
	return h[:20]
}

// pckSGXExtension is the Intel SGX extension (OID 1.2.840.113741.1.13.1) of
// a PCK certificate: PPID, TCB (16 components, PCESVN, CPUSVN), PCE-ID,
// FMSPC and SGX type.
func pckSGXExtension() (pkix.Extension, error) {
	type oidValue struct {
		ID    asn1.ObjectIdentifier
		Value any
	}
	oid := func(arc ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}, arc...)
	}
	var tcb []any
	for i := 0; i < 16; i++ {
		tcb = append(tcb, oidValue{oid(2, i+1), int(emulatedCPUSVN[i])})
	}
	tcb = append(tcb, oidValue{oid(2, 17), int(emulatedPCESVN)}, oidValue{oid(2, 18), emulatedCPUSVN[:]})
	ppid := make([]byte, 16)
	if _, err := rand.Read(ppid); err != nil {
		return pkix.Extension{}, err
	}
	v, err := asn1.Marshal([]any{
		oidValue{oid(1), ppid},
		struct {
			ID  asn1.ObjectIdentifier
			TCB []any
		}{oid(2), tcb},
		oidValue{oid(3), emulatedPCEID},
		oidValue{oid(4), emulatedFMSPC},
		oidValue{oid(5), asn1.Enumerated(0)},
	})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encoding the PCK SGX extension: %w", err)
	}
	return pkix.Extension{Id: pcs.OidSgxExtension, Value: v}, nil
}

// LoadOrCreateTDXRoot loads the emulated hierarchy from dir, generating and
// saving it (0600) on first use.
func LoadOrCreateTDXRoot(dir string) (*TDXRoot, error) {
	return loadOrCreate(filepath.Join(dir, TDXRootFile), "emulated TDX root", func() ([]byte, error) {
		r, err := NewTDXRoot()
		if err != nil {
			return nil, err
		}
		return r.marshal()
	}, parseTDXRoot)
}

func (r *TDXRoot) marshal() ([]byte, error) {
	var out []byte
	for _, k := range []*ecdsa.PrivateKey{r.rootKey, r.pckCAKey, r.pckKey, r.tcbKey, r.attKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	}
	for _, c := range []*x509.Certificate{r.Root, r.PCKCA, r.PCK, r.TCBSigning} {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out, nil
}

func parseTDXRoot(b []byte) (*TDXRoot, error) {
	var keys []*ecdsa.PrivateKey
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
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("unexpected key type")
			}
			keys = append(keys, ek)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, err
			}
			certs = append(certs, c)
		}
	}
	if len(keys) != 5 || len(certs) != 4 {
		return nil, fmt.Errorf("want 5 keys and 4 certificates, found %d and %d", len(keys), len(certs))
	}
	return &TDXRoot{
		rootKey: keys[0], pckCAKey: keys[1], pckKey: keys[2], tcbKey: keys[3], attKey: keys[4],
		Root: certs[0], PCKCA: certs[1], PCK: certs[2], TCBSigning: certs[3],
	}, nil
}

// RootPEM returns the emulated Intel root certificate as PEM: what a Steward
// policy names to trust this emulated hierarchy.
func (r *TDXRoot) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Root.Raw})
}

// TDXOptions describe the emulated trust domain.
type TDXOptions struct {
	// MRTD is the TD measurement (48 bytes).
	MRTD [48]byte
	// RTMRs are the runtime measurement registers.
	RTMRs [4][48]byte
	// Debug sets TDATTRIBUTES.DEBUG (for negative tests).
	Debug bool
	// TEETCBSVN is the TDX module's TEE_TCB_SVN; zero means the emulated
	// module's, the one level the emulated TCB Info lists as UpToDate (a
	// lower one matches no level: for negative tests).
	TEETCBSVN [16]byte
}

// SignQuote builds and signs a TDX quote v4.
func (r *TDXRoot) SignQuote(reportData [64]byte, o TDXOptions) ([]byte, error) {
	attPub, err := rawP256(&r.attKey.PublicKey)
	if err != nil {
		return nil, err
	}
	qeAuth := make([]byte, 32)
	for i := range qeAuth {
		qeAuth[i] = byte(i)
	}
	qe, err := r.qeCertification(attPub, qeAuth)
	if err != nil {
		return nil, err
	}
	q := &pb.QuoteV4{
		Header: &pb.Header{
			Version: 4, AttestationKeyType: 2, TeeType: abi.TeeTDX, QeSvn: []byte{qeISVSVN, 0}, PceSvn: []byte{byte(emulatedPCESVN), 0},
			QeVendorId: emulatedQEVendor[:], UserData: make([]byte, 20),
		},
		TdQuoteBody: tdBody(reportData, o),
		SignedData: &pb.Ecdsa256BitQuoteV4AuthData{
			Signature:           make([]byte, 64),
			EcdsaAttestationKey: attPub,
			CertificationData: &pb.CertificationData{
				CertificateDataType:       6,
				Size:                      uint32(384 + 64 + 2 + len(qeAuth) + 2 + 4 + len(qe.GetPckCertificateChainData().GetPckCertChain())),
				QeReportCertificationData: qe,
			},
		},
	}
	q.SignedDataSize = 64 + 64 + 2 + 4 + q.SignedData.CertificationData.Size
	hdr, err := abi.HeaderToAbiBytes(q.Header)
	if err != nil {
		return nil, err
	}
	body, err := abi.TdQuoteBodyToAbiBytes(q.TdQuoteBody)
	if err != nil {
		return nil, err
	}
	if q.SignedData.Signature, err = rawSign(r.attKey, append(hdr, body...)); err != nil {
		return nil, err
	}
	raw, err := abi.QuoteToAbiBytes(q)
	if err != nil {
		return nil, fmt.Errorf("encoding the emulated TDX quote: %w", err)
	}
	return raw, nil
}

// tdBody is the TD quote body of the emulated trust domain o.
func tdBody(reportData [64]byte, o TDXOptions) *pb.TDQuoteBody {
	tdAttr := make([]byte, 8)
	if o.Debug {
		tdAttr[0] = 1
	}
	teeTCBSVN := emulatedTeeTCBSVN
	if o.TEETCBSVN != ([16]byte{}) {
		teeTCBSVN = o.TEETCBSVN
	}
	rtmrs := make([][]byte, 4)
	for i := range rtmrs {
		rtmrs[i] = append([]byte{}, o.RTMRs[i][:]...)
	}
	return &pb.TDQuoteBody{
		TeeTcbSvn: teeTCBSVN[:], MrSeam: make([]byte, 48), MrSignerSeam: make([]byte, 48),
		SeamAttributes: make([]byte, 8), TdAttributes: tdAttr, Xfam: []byte{0xe7, 0x18, 0x06, 0, 0, 0, 0, 0},
		MrTd: o.MRTD[:], MrConfigId: make([]byte, 48), MrOwner: make([]byte, 48), MrOwnerConfig: make([]byte, 48),
		Rtmrs: rtmrs, ReportData: reportData[:],
	}
}

// qeCertification is the quoting enclave's part of the quote: its report
// committing to the attestation key (signed by the PCK key), its auth
// data and the PCK chain.
func (r *TDXRoot) qeCertification(attPub, qeAuth []byte) (*pb.QEReportCertificationData, error) {
	h := sha256.Sum256(append(append([]byte{}, attPub...), qeAuth...))
	qeReport := &pb.EnclaveReport{
		CpuSvn: emulatedCPUSVN[:], MiscSelect: 0, Reserved1: make([]byte, 28), Attributes: qeAttributes,
		MrEnclave: make([]byte, 32), Reserved2: make([]byte, 32), MrSigner: emulatedQEMRSigner, Reserved3: make([]byte, 96),
		IsvProdId: qeISVProdID, IsvSvn: qeISVSVN, Reserved4: make([]byte, 60), ReportData: append(h[:], make([]byte, 32)...),
	}
	rawQE, err := abi.EnclaveReportToAbiBytes(qeReport)
	if err != nil {
		return nil, fmt.Errorf("emulated QE report: %w", err)
	}
	qeSig, err := rawSign(r.pckKey, rawQE)
	if err != nil {
		return nil, err
	}
	var chain []byte
	for _, c := range []*x509.Certificate{r.PCK, r.PCKCA, r.Root} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return &pb.QEReportCertificationData{
		QeReport: qeReport, QeReportSignature: qeSig,
		QeAuthData: &pb.QeAuthData{ParsedDataSize: uint32(len(qeAuth)), Data: qeAuth},
		PckCertificateChainData: &pb.PCKCertificateChainData{
			CertificateDataType: 5, Size: uint32(len(chain)), PckCertChain: chain,
		},
	}, nil
}

// rawSign signs SHA-256(msg) and returns r||s (32 bytes each), Intel's form.
func rawSign(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	R, S, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return nil, err
	}
	return append(R.FillBytes(make([]byte, 32)), S.FillBytes(make([]byte, 32))...), nil
}

// signedJSON is a PCS document: {"<field>": body, "signature": hex(r||s)}
// where the signature covers the exact bytes of body.
func (r *TDXRoot) signedJSON(field string, body []byte) ([]byte, error) {
	sig, err := rawSign(r.tcbKey, body)
	if err != nil {
		return nil, err
	}
	return []byte(`{"` + field + `":` + string(body) + `,"signature":"` + hex.EncodeToString(sig) + `"}`), nil
}

// Collateral returns the emulated PCS collateral (root and PCK CRLs, TDX
// TCB Info, TDX QE Identity), valid for a week from now and regenerated
// when it gets old.
func (r *TDXRoot) Collateral(now time.Time) (*envelope.TdxEvidence, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.collateral != nil && now.Add(24*time.Hour).Before(r.colNext) {
		return r.collateral, nil
	}
	issue, next := now.Add(-time.Hour).UTC().Truncate(time.Second), now.Add(7*24*time.Hour).UTC().Truncate(time.Second)
	crl := func(issuer *x509.Certificate, key *ecdsa.PrivateKey) ([]byte, error) {
		return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(now.Unix()), ThisUpdate: issue, NextUpdate: next,
		}, issuer, key)
	}
	rootCRL, err := crl(r.Root, r.rootKey)
	if err != nil {
		return nil, err
	}
	pckCRL, err := crl(r.PCKCA, r.pckCAKey)
	if err != nil {
		return nil, err
	}
	comps := func(svns []byte) []map[string]any {
		out := make([]map[string]any, len(svns))
		for i, s := range svns {
			out[i] = map[string]any{"svn": s, "category": "", "type": ""}
		}
		return out
	}
	tcbInfo, err := json.Marshal(map[string]any{
		"id": "TDX", "version": 3, "issueDate": issue, "nextUpdate": next,
		"fmspc": hex.EncodeToString(emulatedFMSPC), "pceId": hex.EncodeToString(emulatedPCEID),
		"tcbType": 0, "tcbEvaluationDataNumber": 17,
		"tdxModule": map[string]any{"mrsigner": hex.EncodeToString(make([]byte, 48)), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"},
		"tcbLevels": []any{map[string]any{
			"tcb":     map[string]any{"sgxtcbcomponents": comps(emulatedCPUSVN[:]), "pcesvn": emulatedPCESVN, "tdxtcbcomponents": comps(emulatedTeeTCBSVN[:])},
			"tcbDate": issue.Format(time.RFC3339), "tcbStatus": "UpToDate",
		}},
	})
	if err != nil {
		return nil, err
	}
	qeID, err := json.Marshal(map[string]any{
		"id": "TD_QE", "version": 2, "issueDate": issue, "nextUpdate": next, "tcbEvaluationDataNumber": 17,
		"miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": hex.EncodeToString(qeAttributes), "attributesMask": hex.EncodeToString(qeAttributesMask),
		"mrsigner": hex.EncodeToString(emulatedQEMRSigner), "isvprodid": qeISVProdID,
		"tcbLevels": []any{map[string]any{"tcb": map[string]any{"isvsvn": qeISVSVN}, "tcbDate": issue.Format(time.RFC3339), "tcbStatus": "UpToDate"}},
	})
	if err != nil {
		return nil, err
	}
	tcbDoc, err := r.signedJSON("tcbInfo", tcbInfo)
	if err != nil {
		return nil, err
	}
	qeDoc, err := r.signedJSON("enclaveIdentity", qeID)
	if err != nil {
		return nil, err
	}
	chain := [][]byte{r.TCBSigning.Raw, r.Root.Raw}
	r.collateral = &envelope.TdxEvidence{
		CRLs:       envelope.CrlList{{URL: intelRootCRLURL, CRL: rootCRL}, {URL: pcs.PckCrlURL("platform"), CRL: pckCRL}},
		TCB:        envelope.TcbPackage{Certs: chain, Report: tcbDoc},
		QEIdentity: envelope.TcbPackage{Certs: chain, Report: qeDoc},
	}
	r.colNext = next
	return r.collateral, nil
}

// TDXProvider is the emulated TDX attest.EvidenceProvider.
type TDXProvider struct {
	Root    *TDXRoot
	Options TDXOptions
	// Now is the clock for the collateral; nil means time.Now.
	Now func() time.Time
}

var _ attest.EvidenceProvider = (*TDXProvider)(nil)

// Kind implements attest.EvidenceProvider.
func (*TDXProvider) Kind() attest.Kind { return attest.KindTDX }

// Evidence implements attest.EvidenceProvider.
func (p *TDXProvider) Evidence(_ context.Context, reportData [64]byte) ([]byte, error) {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	ev, err := p.Root.Evidence(reportData, p.Options, now)
	if err != nil {
		return nil, err
	}
	return ev.Marshal()
}

// Evidence returns a quote for reportData and o with the collateral current
// at now: the TdxEvidence a Keep of the emulated backend sends. The result
// is the caller's to change (tests do, after signing).
func (r *TDXRoot) Evidence(reportData [64]byte, o TDXOptions, now time.Time) (*envelope.TdxEvidence, error) {
	q, err := r.SignQuote(reportData, o)
	if err != nil {
		return nil, err
	}
	col, err := r.Collateral(now)
	if err != nil {
		return nil, err
	}
	ev := &envelope.TdxEvidence{Quote: q, TCB: clonePackage(col.TCB), QEIdentity: clonePackage(col.QEIdentity)}
	for _, c := range col.CRLs {
		ev.CRLs = append(ev.CRLs, envelope.CrlListEntry{URL: c.URL, CRL: bytes.Clone(c.CRL)})
	}
	return ev, nil
}

func clonePackage(p envelope.TcbPackage) envelope.TcbPackage {
	out := envelope.TcbPackage{Report: bytes.Clone(p.Report)}
	for _, c := range p.Certs {
		out.Certs = append(out.Certs, bytes.Clone(c))
	}
	return out
}

// rawP256 is a P-256 public key as the quote carries it: X ‖ Y, 64 bytes.
func rawP256(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil || len(b) != 65 {
		return nil, fmt.Errorf("attestation key: not an uncompressed P-256 point: %v", err)
	}
	return b[1:], nil
}
