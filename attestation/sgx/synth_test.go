package sgx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
)

// A synthetic SGX platform: a test root standing in for Intel's, a
// platform CA, a PCK with a real-format SGX extension, a TCB Signing key,
// and quotes built byte by byte. It reaches the checks that the recorded
// evidence cannot (revoked or expired PCK, low QE/PCE SVN, debug enclaves,
// UpToDate and Revoked TCB levels).

const pckCRLURL = "https://example.test/pckcrl?ca=platform"

var synthFMSPC = []byte{0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00}

type synthPlatform struct {
	pki                *testPKI
	ca, pck            *x509.Certificate
	caKey, pckKey, att *ecdsa.PrivateKey
}

// knobs change one thing about the synthetic evidence.
type knobs struct {
	pckNotAfter   time.Time
	qeSVN, pceSVN uint16
	attributes    uint64
	pckSVNs       [16]byte
	pckPCESVN     int
	levelStatus   string
	levelSVN      byte
	revokePCK     bool
	revokeCA      bool
	tcbPCEID      string
	// The QE report: Intel's QE unless changed (checkIntelQE).
	qeMRSIGNER   [32]byte
	qeProdID     uint16
	qeAttributes uint64
	qeISVSVN     uint16
}

func defaultKnobs() knobs {
	k := knobs{
		pckNotAfter: refTime.AddDate(1, 0, 0),
		qeSVN:       8, pceSVN: 13,
		attributes:  quote.AttrInit | quote.AttrMode64Bit,
		pckPCESVN:   13,
		levelStatus: "UpToDate",
		levelSVN:    5,
		tcbPCEID:    "0000",
		qeMRSIGNER:  intelQEMRSIGNER, qeProdID: intelQEProdID,
		qeAttributes: quote.AttrInit | quote.AttrMode64Bit | quote.AttrProvisionKey,
		qeISVSVN:     8,
	}
	for i := range k.pckSVNs {
		k.pckSVNs[i] = 5
	}
	return k
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sgxExtension encodes the PCK SGX extension (1.2.840.113741.1.13.1).
func sgxExtension(t testing.TB, svns [16]byte, pcesvn int) pkix.Extension {
	oid := func(arcs ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}, arcs...)
	}
	type attr struct {
		Type  asn1.ObjectIdentifier
		Value any
	}
	var tcb []attr
	for i, s := range svns {
		tcb = append(tcb, attr{oid(2, i+1), int(s)})
	}
	tcb = append(tcb, attr{oid(2, 17), pcesvn}, attr{oid(2, 18), svns[:]})
	val, err := asn1.Marshal([]any{
		attr{oid(1), make([]byte, 16)},
		struct {
			Type  asn1.ObjectIdentifier
			Value []attr
		}{oid(2), tcb},
		attr{oid(3), []byte{0, 0}},
		attr{oid(4), synthFMSPC},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oid(), Value: val}
}

func newSynthPlatform(t testing.TB, k knobs) *synthPlatform {
	p := &synthPlatform{pki: newTestPKI(t), caKey: mustKey(t), pckKey: mustKey(t), att: mustKey(t)}
	nb := refTime.AddDate(-1, 0, 0)
	p.ca = mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "Test SGX PCK Platform CA"},
		NotBefore: nb, NotAfter: refTime.AddDate(5, 0, 0), BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, CRLDistributionPoints: []string{testRootCRLURL}},
		p.pki.root, &p.caKey.PublicKey, p.pki.rootKey)
	p.pck = mustCert(t, &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "Test SGX PCK Certificate"},
		NotBefore: nb, NotAfter: k.pckNotAfter, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		SubjectKeyId: []byte{1, 2, 3, 4}, CRLDistributionPoints: []string{pckCRLURL},
		ExtraExtensions: []pkix.Extension{sgxExtension(t, k.pckSVNs, k.pckPCESVN)}},
		p.ca, &p.pckKey.PublicKey, p.caKey)
	return p
}

func signRS(t testing.TB, key *ecdsa.PrivateKey, msg []byte) []byte {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// quote builds a DCAP v3 quote binding reportData.
func (p *synthPlatform) quote(t testing.TB, k knobs, reportData [64]byte) []byte {
	q := make([]byte, quote.SignedSize)
	binary.LittleEndian.PutUint16(q[0:], 3)
	binary.LittleEndian.PutUint16(q[2:], 2)
	binary.LittleEndian.PutUint16(q[8:], k.qeSVN)
	binary.LittleEndian.PutUint16(q[10:], k.pceSVN)
	copy(q[12:], quote.IntelQEVendorID[:])
	body := q[quote.HeaderSize:]
	binary.LittleEndian.PutUint64(body[48:], k.attributes)
	copy(body[64:96], strings.Repeat("E", 32))   // MRENCLAVE
	copy(body[128:160], strings.Repeat("S", 32)) // MRSIGNER
	copy(body[320:], reportData[:])

	pub, err := p.att.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	attPub := pub[1:] // X‖Y without the 0x04 prefix
	auth := []byte(strings.Repeat("a", 32))
	qe := make([]byte, quote.ReportBodySize)
	binary.LittleEndian.PutUint64(qe[48:], k.qeAttributes)
	copy(qe[128:160], k.qeMRSIGNER[:])
	binary.LittleEndian.PutUint16(qe[256:], k.qeProdID)
	binary.LittleEndian.PutUint16(qe[258:], k.qeISVSVN)
	h := sha256.New()
	h.Write(attPub)
	h.Write(auth)
	copy(qe[320:], h.Sum(nil))
	certs := encodePEM([][]byte{p.pck.Raw, p.ca.Raw, p.pki.root.Raw})

	var sig []byte
	sig = append(sig, signRS(t, p.att, q)...)
	sig = append(sig, attPub...)
	sig = append(sig, qe...)
	sig = append(sig, signRS(t, p.pckKey, qe)...)
	sig = binary.LittleEndian.AppendUint16(sig, uint16(len(auth)))
	sig = append(sig, auth...)
	sig = binary.LittleEndian.AppendUint16(sig, 5)
	sig = binary.LittleEndian.AppendUint32(sig, uint32(len(certs)))
	sig = append(sig, certs...)
	q = binary.LittleEndian.AppendUint32(q, uint32(len(sig)))
	return append(q, sig...)
}

func (p *synthPlatform) tcbInfo(t testing.TB, k knobs) []byte {
	comps := make([]map[string]int, 16)
	for i := range comps {
		comps[i] = map[string]int{"svn": int(k.levelSVN)}
	}
	info, err := json.Marshal(map[string]any{
		"id": "SGX", "version": 3, "issueDate": "2023-01-20T00:00:00Z", "nextUpdate": "2023-02-20T00:00:00Z",
		"fmspc": "00906ED50000", "pceId": k.tcbPCEID, "tcbType": 0, "tcbEvaluationDataNumber": 14,
		"tcbLevels": []any{
			map[string]any{"tcb": map[string]any{"sgxtcbcomponents": comps, "pcesvn": 13}, "tcbDate": "2022-11-09T00:00:00Z", "tcbStatus": k.levelStatus, "advisoryIDs": []string{"INTEL-SA-00615"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p.pki.sign(t, "tcbInfo", info)
}

func (p *synthPlatform) crl(t testing.TB, issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked ...*x509.Certificate) []byte {
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: refTime.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: refTime.Add(-24 * time.Hour), NextUpdate: refTime.Add(24 * time.Hour), RevokedCertificateEntries: entries}, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// request builds a CSR-backed VerifyRequest for k.
func (p *synthPlatform) request(t testing.TB, k knobs) *attest.VerifyRequest {
	csr := newCSR(t, elliptic.P256())
	var rootRevoked, pckRevoked []*x509.Certificate
	if k.revokeCA {
		rootRevoked = append(rootRevoked, p.ca)
	}
	if k.revokePCK {
		pckRevoked = append(pckRevoked, p.pck)
	}
	ev := &envelope.SgxEvidence{
		Quote: p.quote(t, k, attest.ReportData(attest.KindSGX, csr.RawSubjectPublicKeyInfo)),
		CRLs: envelope.CrlList{
			{URL: testRootCRLURL, CRL: p.crl(t, p.pki.root, p.pki.rootKey, rootRevoked...)},
			{URL: pckCRLURL, CRL: p.crl(t, p.ca, p.caKey, pckRevoked...)},
		},
		TCB: envelope.TcbPackage{Certs: [][]byte{p.pki.signing.Raw, p.pki.root.Raw}, Report: p.tcbInfo(t, k)},
	}
	der, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &attest.VerifyRequest{CSR: csr, Extension: pkix.Extension{Id: attest.OIDEvidenceSGX, Value: der}, Now: refTime}
}

// verifier trusts the platform's test root instead of Intel's.
func (p *synthPlatform) verifier(pol *Policy) *Verifier {
	v := newVerifier(Options{Policy: pol})
	v.root = p.pki.root
	v.roots = x509.NewCertPool()
	v.roots.AddCert(p.pki.root)
	return v
}

func TestSyntheticPlatform(t *testing.T) {
	signer := strings.Repeat("53", 32) // "S"×32
	allowAll := &Policy{Signer: []string{signer}, AllowedAdvisories: []string{"INTEL-SA-00615"}}
	debugOK := &Policy{Signer: []string{signer}, Features: &[]string{"Debug"}}
	for _, c := range []struct {
		name   string
		policy *Policy
		mod    func(k *knobs)
		code   string
	}{
		{"uptodate, no [sgx] table", nil, nil, ""},
		{"uptodate, signer policy", &Policy{Signer: []string{signer}}, nil, ""},
		{"pck revoked", nil, func(k *knobs) { k.revokePCK = true }, "sgx.crl.revoked"},
		{"platform ca revoked", nil, func(k *knobs) { k.revokeCA = true }, "sgx.crl.revoked"},
		{"pck expired", nil, func(k *knobs) { k.pckNotAfter = refTime.Add(-time.Hour) }, "sgx.pck.expired"},
		{"qe svn 6", nil, func(k *knobs) { k.qeSVN = 6 }, "sgx.qe.svn"},
		// Without a QE Identity in the evidence, the QE is pinned to
		// Intel's: a host's own provisioning enclave posing as the QE
		// (its report is PCK-signed all the same) is refused.
		{"qe not Intel's", nil, func(k *knobs) { k.qeMRSIGNER[0] ^= 1 }, "sgx.qe.identity"},
		{"qe product 2", nil, func(k *knobs) { k.qeProdID = 2 }, "sgx.qe.identity"},
		{"debug qe", nil, func(k *knobs) { k.qeAttributes |= quote.AttrDebug }, "sgx.qe.identity"},
		{"qe report svn 6 under a header of 8", nil, func(k *knobs) { k.qeISVSVN = 6 }, "sgx.qe.svn"},
		{"pce svn 11", nil, func(k *knobs) { k.pceSVN = 11 }, "sgx.pce.svn"},
		{"debug enclave, no table", nil, func(k *knobs) { k.attributes |= quote.AttrDebug }, "sgx.policy.debug"},
		{"debug enclave allowed", debugOK, func(k *knobs) { k.attributes |= quote.AttrDebug }, ""},
		{"kss enclave, only debug allowed", debugOK, func(k *knobs) { k.attributes |= quote.AttrKSS }, "sgx.policy.attributes"},
		{"platform below every level", nil, func(k *knobs) { k.pckSVNs[15] = 4 }, "sgx.tcb.level"},
		{"platform pcesvn below every level", nil, func(k *knobs) { k.pckPCESVN = 12 }, "sgx.tcb.level"},
		{"swhardening, no table", nil, func(k *knobs) { k.levelStatus = "SWHardeningNeeded" }, "sgx.tcb.status"},
		{"swhardening, advisory allowed", allowAll, func(k *knobs) { k.levelStatus = "SWHardeningNeeded" }, ""},
		{"revoked level, advisory allowed", allowAll, func(k *knobs) { k.levelStatus = "Revoked" }, "sgx.tcb.status"},
		{"pce id mismatch", nil, func(k *knobs) { k.tcbPCEID = "0100" }, "sgx.tcb.pceid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := defaultKnobs()
			if c.mod != nil {
				c.mod(&k)
			}
			p := newSynthPlatform(t, k)
			claims, err := p.verifier(c.policy).Verify(context.Background(), p.request(t, k))
			if got := code(err); got != c.code {
				t.Fatalf("got %q (%v), want %q", got, err, c.code)
			}
			if err == nil && (claims.Debug != (k.attributes&quote.AttrDebug != 0) || claims.TCBStatus != k.levelStatus) {
				t.Fatalf("claims %+v", claims)
			}
		})
	}
	// The synthetic evidence is not trusted under the real Intel root.
	k := defaultKnobs()
	p := newSynthPlatform(t, k)
	expectCode(t, NewVerifier(Options{}), p.request(t, k), "sgx.tcb.chain")
}
