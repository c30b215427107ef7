package sgx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attestation/crl"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
)

// encodeEvidence is decodeEvidence's inverse.
func encodeEvidence(ev *envelope.SgxEvidence, qe *envelope.TcbPackage) ([]byte, error) {
	three, err := ev.Marshal()
	if err != nil || qe == nil {
		return three, err
	}
	pkg, err := qe.Marshal()
	if err != nil {
		return nil, err
	}
	in := cryptobyte.String(three)
	var body cryptobyte.String
	in.ReadASN1(&body, cbasn1.SEQUENCE)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(body)
		b.AddBytes(pkg)
	})
	return b.Bytes()
}

// testPKI is a stand-in for Intel's root and TCB Signing key, for collateral
// that no real Intel signature exists for in testdata.
type testPKI struct {
	root, signing *x509.Certificate
	rootKey, key  *ecdsa.PrivateKey
	rootCRL       []byte
}

const testRootCRLURL = "https://example.test/root.crl"

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{}
	var err error
	mk := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) *x509.Certificate {
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
	if p.rootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if p.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	nb, na := refTime.AddDate(-1, 0, 0), refTime.AddDate(1, 0, 0)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test SGX Root CA"}, NotBefore: nb, NotAfter: na,
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, CRLDistributionPoints: []string{testRootCRLURL}}
	p.root = mk(rt, rt, &p.rootKey.PublicKey, p.rootKey)
	st := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test SGX TCB Signing"}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, CRLDistributionPoints: []string{testRootCRLURL}}
	p.signing = mk(st, p.root, &p.key.PublicKey, p.rootKey)
	if p.rootCRL, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: refTime.Add(-time.Hour), NextUpdate: refTime.Add(time.Hour)}, p.root, p.rootKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// sign wraps an object under key in Intel's {"<key>":…,"signature":"…"}.
func (p *testPKI) sign(t testing.TB, key string, obj []byte) []byte {
	t.Helper()
	d := sha256.Sum256(obj)
	r, s, err := ecdsa.Sign(rand.Reader, p.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return []byte(`{"` + key + `":` + string(obj) + `,"signature":"` + hex.EncodeToString(sig[:]) + `"}`)
}

func (p *testPKI) pkg(body []byte) *envelope.TcbPackage {
	return &envelope.TcbPackage{Certs: [][]byte{p.signing.Raw, p.root.Raw}, Report: body}
}

// qeIdentityFor writes a QE Identity that the quote's QE report satisfies,
// then lets mutate change it.
func qeIdentityFor(q *quote.Quote, mutate func(m map[string]any)) []byte {
	r := q.QEReport
	m := map[string]any{
		"id": "QE", "version": 2,
		"issueDate": "2023-01-20T00:00:00Z", "nextUpdate": "2023-02-20T00:00:00Z",
		"tcbEvaluationDataNumber": 14,
		"miscselect":              strings.ToUpper(hex.EncodeToString(q.QEReportRaw[16:20])),
		"miscselectMask":          "FFFFFFFF",
		"attributes":              strings.ToUpper(hex.EncodeToString(q.QEReportRaw[48:64])),
		"attributesMask":          "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner":                strings.ToUpper(hex.EncodeToString(r.MRSIGNER[:])),
		"isvprodid":               r.ISVProdID,
		"tcbLevels": []any{
			map[string]any{"tcb": map[string]any{"isvsvn": r.ISVSVN}, "tcbDate": "2022-08-10T00:00:00Z", "tcbStatus": "UpToDate"},
			map[string]any{"tcb": map[string]any{"isvsvn": 0}, "tcbDate": "2018-01-01T00:00:00Z", "tcbStatus": "OutOfDate", "advisoryIDs": []string{"INTEL-SA-00615"}},
		},
	}
	if mutate != nil {
		mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestQEIdentity(t *testing.T) {
	pki := newTestPKI(t)
	v := newVerifier(Options{Policy: testPolicy(t)})
	// Trust the test root instead of Intel's, for QE Identity only.
	v.root = pki.root
	v.roots = x509.NewCertPool()
	v.roots.AddCert(pki.root)
	q, err := quote.Parse(evidence(t, i5).Quote)
	if err != nil {
		t.Fatal(err)
	}
	if q.QEReport.ISVSVN == 0 {
		t.Fatal("test needs a QE with ISVSVN > 0")
	}
	crls := []crl.Entry{{URL: testRootCRLURL, DER: pki.rootCRL}}
	for _, c := range []struct {
		name   string
		body   []byte
		now    time.Time
		code   string
		status string
	}{
		{"matches", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil)), refTime, "", "UpToDate"},
		{"older level", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) {
			m["tcbLevels"].([]any)[0].(map[string]any)["tcb"] = map[string]any{"isvsvn": q.QEReport.ISVSVN + 1}
		})), refTime, "", "OutOfDate"},
		{"no level", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) {
			m["tcbLevels"] = []any{map[string]any{"tcb": map[string]any{"isvsvn": q.QEReport.ISVSVN + 1}, "tcbDate": "2022-08-10T00:00:00Z", "tcbStatus": "UpToDate"}}
		})), refTime, "sgx.qeid.level", ""},
		{"other mrsigner", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) { m["mrsigner"] = strings.Repeat("00", 32) })), refTime, "sgx.qeid.mismatch", ""},
		{"other product", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) { m["isvprodid"] = 99 })), refTime, "sgx.qeid.mismatch", ""},
		{"other attributes", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) { m["attributes"] = strings.Repeat("FF", 16) })), refTime, "sgx.qeid.mismatch", ""},
		{"other miscselect", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) { m["miscselect"] = "FFFFFFFF" })), refTime, "sgx.qeid.mismatch", ""},
		{"tdx qe", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, func(m map[string]any) { m["id"] = "TD_QE" })), refTime, "sgx.qeid.malformed", ""},
		{"expired", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil)), refTime.AddDate(0, 0, 25), "sgx.qeid.expired", ""},
		{"future", pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil)), refTime.AddDate(0, 0, -15), "sgx.qeid.future", ""},
		{"signature", bytes.Replace(pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil)), []byte(`"version":2`), []byte(`"version":2 `), 1), refTime, "sgx.qeid.signature", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := v.checkQEIdentity(pki.pkg(c.body), q, crls, c.now)
			if got := code(err); got != c.code {
				t.Fatalf("got %q (%v), want %q", got, err, c.code)
			}
			if err == nil && l.TCBStatus != c.status {
				t.Fatalf("level %s, want %s", l.TCBStatus, c.status)
			}
		})
	}
	good := pki.pkg(pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil)))
	if _, err := v.checkQEIdentity(good, q, nil, refTime); code(err) != "sgx.crl.missing" {
		t.Fatalf("QE Identity chain without CRL: %v", err)
	}
	revoking, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(2),
		ThisUpdate: refTime.Add(-time.Hour), NextUpdate: refTime.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: pki.signing.SerialNumber, RevocationTime: refTime.Add(-time.Hour)}},
	}, pki.root, pki.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.checkQEIdentity(good, q, []crl.Entry{{URL: testRootCRLURL, DER: revoking}}, refTime); code(err) != "sgx.crl.revoked" {
		t.Fatalf("revoked TCB Signing certificate: %v", err)
	}
	if _, err := v.checkQEIdentity(good, q, crls, refTime.Add(2*time.Hour)); code(err) != "sgx.crl.expired" {
		t.Fatalf("expired root CRL: %v", err)
	}
}

// TestQEIdentityInEvidence: a fourth SgxEvidence field is decoded and
// checked; collateral not signed under Intel's root is rejected, garbage
// is malformed evidence.
func TestQEIdentityInEvidence(t *testing.T) {
	pki := newTestPKI(t)
	v := NewVerifier(Options{Policy: testPolicy(t)})
	ev := evidence(t, i5)
	q, err := quote.Parse(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	der, err := encodeEvidence(ev, pki.pkg(pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil))))
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, i5)
	req.Extension.Value = der
	expectCode(t, v, req, "sgx.qeid.chain")

	// The real TCB Signing chain, but the body is not Intel's.
	real := evidence(t, i5).TCB
	der, err = encodeEvidence(ev, &envelope.TcbPackage{Certs: real.Certs, Report: pki.sign(t, "enclaveIdentity", qeIdentityFor(q, nil))})
	if err != nil {
		t.Fatal(err)
	}
	req.Extension.Value = der
	expectCode(t, v, req, "sgx.qeid.signature")

	req.Extension.Value = append(slices.Clone(der[:len(der)-1]), der[len(der)-1]^1)
	if _, err := v.Verify(context.Background(), req); err == nil {
		t.Fatal("accepted a corrupted QE Identity")
	}

	// Three fields still decode exactly like upstream.
	three, err := encodeEvidence(ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, qe, err := decodeEvidence(three); err != nil || qe != nil {
		t.Fatalf("three-field evidence: %v, %v", qe, err)
	}
	// A fifth field is not accepted.
	five := append(slices.Clone(der), 0x30, 0x00)
	if _, _, err := decodeEvidence(five); err == nil {
		t.Fatal("trailing data accepted")
	}
}
