package tdxtest

import (
	"bytes"
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
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"
	"google.golang.org/protobuf/proto"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// Emulated is a fake Intel hierarchy (root, PCK platform CA, PCK leaf, TCB
// signing) with fresh P-256 keys and the names go-tdx-guest expects. It
// re-signs go-tdx-guest's sample quote, with a body of the caller's choice,
// and matching collateral, so that the accept path can be tested end to end.
// A verifier must trust Root explicitly; Intel's root never accepts it.
type Emulated struct {
	Root                      *x509.Certificate
	pckCA, pck, tcbSigning    *x509.Certificate
	rootKey, pckCAKey         *ecdsa.PrivateKey
	pckKey, tcbKey, attestKey *ecdsa.PrivateKey
	now                       time.Time
}

var oidSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

// NewEmulated builds the hierarchy, valid around now.
func NewEmulated(now time.Time) (*Emulated, error) {
	e := &Emulated{now: now}
	keys := []**ecdsa.PrivateKey{&e.rootKey, &e.pckCAKey, &e.pckKey, &e.tcbKey, &e.attestKey}
	for _, k := range keys {
		var err error
		if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	// The PCK leaf carries the sample PCK's SGX extension (FMSPC, TCB, PCEID).
	q, err := abi.QuoteToProto(testdata.RawQuote)
	if err != nil {
		return nil, err
	}
	chain := q.(*pb.QuoteV4).GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	blk, _ := pem.Decode(chain)
	if blk == nil {
		return nil, fmt.Errorf("tdxtest: no PCK in the sample quote")
	}
	realPCK, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	var sgxExt *pkix.Extension
	for i := range realPCK.Extensions {
		if realPCK.Extensions[i].Id.Equal(oidSGXExtensions) {
			sgxExt = &realPCK.Extensions[i]
		}
	}
	if sgxExt == nil {
		return nil, fmt.Errorf("tdxtest: the sample PCK has no SGX extension")
	}
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation"}, Locality: []string{"Santa Clara"}, Province: []string{"CA"}, Country: []string{"US"}}
	}
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0)
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, fmt.Errorf("tdxtest: %s: %w", tmpl.Subject.CommonName, err)
		}
		return x509.ParseCertificate(der)
	}
	if e.Root, err = issue(&x509.Certificate{Subject: name("Intel SGX Root CA"), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, CRLDistributionPoints: []string{RootCRLURL}},
		nil, &e.rootKey.PublicKey, e.rootKey); err != nil {
		return nil, err
	}
	if e.pckCA, err = issue(&x509.Certificate{Subject: name("Intel SGX PCK Platform CA"), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, e.Root, &e.pckCAKey.PublicKey, e.rootKey); err != nil {
		return nil, err
	}
	// Like a real PCK: AKI, CRL DP, SKI, KU, BC and the SGX extension
	// (go-tdx-guest expects exactly these six).
	if e.pck, err = issue(&x509.Certificate{Subject: name("Intel SGX PCK Certificate"), KeyUsage: x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, SubjectKeyId: []byte{1, 2, 3, 4}, CRLDistributionPoints: []string{PCKCRLURL},
		ExtraExtensions: []pkix.Extension{*sgxExt}}, e.pckCA, &e.pckKey.PublicKey, e.pckCAKey); err != nil {
		return nil, err
	}
	if e.tcbSigning, err = issue(&x509.Certificate{Subject: name("Intel SGX TCB Signing"), KeyUsage: x509.KeyUsageDigitalSignature},
		e.Root, &e.tcbKey.PublicKey, e.rootKey); err != nil {
		return nil, err
	}
	return e, nil
}

func signRS(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// signedJSON re-signs a PCS body: the value under field is edited by edit,
// re-encoded, and signed by the TCB signing key.
func (e *Emulated) signedJSON(body []byte, field string, edit func(map[string]any)) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(doc[field], &v); err != nil {
		return nil, err
	}
	v["issueDate"] = e.now.AddDate(0, 0, -1).UTC().Format(time.RFC3339)
	v["nextUpdate"] = e.now.AddDate(0, 0, 30).UTC().Format(time.RFC3339)
	edit(v)
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig, err := signRS(e.tcbKey, raw)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, `{"%s":%s,"signature":"%s"}`, field, raw, hex.EncodeToString(sig)), nil
}

// Evidence returns a TdxEvidence whose quote carries the sample's TD body
// changed by mutate (TEE_TCB_SVN is zeroed first, to match the emulated TCB
// Info's single UpToDate level) and reportData, signed by the emulated
// hierarchy, with consistent collateral.
func (e *Emulated) Evidence(reportData [64]byte, mutate func(*pb.TDQuoteBody)) (*envelope.TdxEvidence, error) {
	parsed, err := abi.QuoteToProto(testdata.RawQuote)
	if err != nil {
		return nil, err
	}
	q := proto.Clone(parsed.(*pb.QuoteV4)).(*pb.QuoteV4)
	body := q.GetTdQuoteBody()
	body.TeeTcbSvn = make([]byte, 16)
	body.ReportData = reportData[:]
	if mutate != nil {
		mutate(body)
	}
	sd := q.GetSignedData()
	pub, err := e.attestKey.PublicKey.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		return nil, err
	}
	attest := pub[1:]
	sd.EcdsaAttestationKey = attest
	qe := sd.GetCertificationData().GetQeReportCertificationData()
	h := sha256.Sum256(append(bytes.Clone(attest), qe.GetQeAuthData().GetData()...))
	qe.GetQeReport().ReportData = append(h[:], make([]byte, 32)...)
	qeRaw, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return nil, err
	}
	if qe.QeReportSignature, err = signRS(e.pckKey, qeRaw); err != nil {
		return nil, err
	}
	var chain bytes.Buffer
	for _, c := range []*x509.Certificate{e.pck, e.pckCA, e.Root} {
		chain.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	pcd := qe.GetPckCertificateChainData()
	pcd.PckCertChain = append(chain.Bytes(), 0)
	pcd.Size = uint32(len(pcd.PckCertChain))
	header, err := abi.HeaderToAbiBytes(q.GetHeader())
	if err != nil {
		return nil, err
	}
	bodyRaw, err := abi.TdQuoteBodyToAbiBytes(body)
	if err != nil {
		return nil, err
	}
	if sd.Signature, err = signRS(e.attestKey, append(header, bodyRaw...)); err != nil {
		return nil, err
	}
	// Sizes of the nested data follow the new PCK chain: QE report (384),
	// its signature (64), auth data (2 + n), PCK chain data (2 + 4 + m).
	sd.GetCertificationData().Size = uint32(384 + 64 + 2 + len(qe.GetQeAuthData().GetData()) + 6 + len(pcd.PckCertChain))
	q.ExtraBytes = nil
	q.SignedDataSize = 0
	raw, err := abi.QuoteToAbiBytes(q)
	if err != nil {
		return nil, fmt.Errorf("tdxtest: serialise quote: %w", err)
	}
	q.SignedDataSize = uint32(len(raw) - 48 - 584 - 4)
	if raw, err = abi.QuoteToAbiBytes(q); err != nil {
		return nil, fmt.Errorf("tdxtest: serialise quote: %w", err)
	}

	tcb, err := e.signedJSON(testdata.TcbInfoBody, "tcbInfo", func(v map[string]any) {
		levels := v["tcbLevels"].([]any)
		top := levels[0].(map[string]any)
		t := top["tcb"].(map[string]any)
		for _, key := range []string{"sgxtcbcomponents", "tdxtcbcomponents"} {
			for _, c := range t[key].([]any) {
				c.(map[string]any)["svn"] = 0
			}
		}
		t["pcesvn"] = 0
		top["tcbStatus"] = "UpToDate"
		v["tcbLevels"] = []any{top}
	})
	if err != nil {
		return nil, err
	}
	qeid, err := e.signedJSON(testdata.QeIdentityBody, "enclaveIdentity", func(v map[string]any) {
		v["tcbLevels"] = []any{map[string]any{"tcb": map[string]any{"isvsvn": 0}, "tcbDate": "2023-02-15T00:00:00Z", "tcbStatus": "UpToDate"}}
	})
	if err != nil {
		return nil, err
	}
	rootCRL, err := e.crl(e.Root, e.rootKey)
	if err != nil {
		return nil, err
	}
	pckCRL, err := e.crl(e.pckCA, e.pckCAKey)
	if err != nil {
		return nil, err
	}
	issuers := [][]byte{e.tcbSigning.Raw, e.Root.Raw}
	return &envelope.TdxEvidence{
		Quote:      raw,
		CRLs:       envelope.CrlList{{URL: RootCRLURL, CRL: rootCRL}, {URL: PCKCRLURL, CRL: pckCRL}},
		TCB:        envelope.TcbPackage{Certs: issuers, Report: tcb},
		QEIdentity: envelope.TcbPackage{Certs: issuers, Report: qeid},
	}, nil
}

func (e *Emulated) crl(issuer *x509.Certificate, key *ecdsa.PrivateKey) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: e.now.AddDate(0, 0, -1), NextUpdate: e.now.AddDate(0, 0, 30),
	}, issuer, key)
}
