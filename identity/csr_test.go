package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"os"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

// csrExtension is one Extension as found in the CSR's DER.
type csrExtension struct {
	oid         asn1.ObjectIdentifier
	hasCritical bool
	value       []byte
}

// walkCSR parses the CertificationRequest DER structurally (RFC 2986) with
// cryptobyte, independently of crypto/x509, and returns the version, the
// raw subject, the number of attributes, the attribute OID and the
// extensions of the single extensionRequest.
func walkCSR(t *testing.T, der []byte) (version int64, subject []byte, nattr int, attrOID asn1.ObjectIdentifier, exts []csrExtension, sigAlg asn1.ObjectIdentifier) {
	t.Helper()
	in := cryptobyte.String(der)
	var csr, info, subj, spki, attrs, algo cryptobyte.String
	if !in.ReadASN1(&csr, cbasn1.SEQUENCE) || !in.Empty() {
		t.Fatal("CSR: not one SEQUENCE")
	}
	if !csr.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!info.ReadASN1Integer(&version) ||
		!info.ReadASN1Element(&subj, cbasn1.SEQUENCE) ||
		!info.ReadASN1(&spki, cbasn1.SEQUENCE) ||
		!info.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) || !info.Empty() {
		t.Fatal("CertificationRequestInfo layout")
	}
	if !csr.ReadASN1(&algo, cbasn1.SEQUENCE) || !algo.ReadASN1ObjectIdentifier(&sigAlg) {
		t.Fatal("signature algorithm")
	}
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&attrOID) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			t.Fatal("attribute layout")
		}
		nattr++
		var extSeq cryptobyte.String
		if !values.ReadASN1(&extSeq, cbasn1.SEQUENCE) || !values.Empty() {
			t.Fatal("extensionRequest must hold exactly one ExtensionReq")
		}
		for !extSeq.Empty() {
			var ext cryptobyte.String
			var e csrExtension
			if !extSeq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.oid) {
				t.Fatal("extension layout")
			}
			if ext.PeekASN1Tag(cbasn1.BOOLEAN) {
				e.hasCritical = true
				var b bool
				if !ext.ReadASN1Boolean(&b) {
					t.Fatal("critical flag")
				}
			}
			var v cryptobyte.String
			if !ext.ReadASN1(&v, cbasn1.OCTET_STRING) || !ext.Empty() {
				t.Fatal("extension value")
			}
			e.value = v
			exts = append(exts, e)
		}
	}
	return version, subj, nattr, attrOID, exts, sigAlg
}

func TestCSRLayoutMatchesUpstream(t *testing.T) {
	w := testWorkload()
	wantW, _ := w.Marshal()
	for _, tc := range []struct {
		kind     attest.Kind
		evidence []byte
		sigAlg   asn1.ObjectIdentifier
	}{
		{attest.KindNone, []byte{}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		{attest.KindSGX, []byte{0x30, 0x00}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}},
		{attest.KindSNP, []byte{0x30, 0x03, 0x04, 0x01, 0x07}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}},
		{attest.KindTDX, []byte{0x30, 0x00}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			s, err := newKeySigner(tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			der, err := createCSR(s, tc.kind, tc.evidence, &w)
			if err != nil {
				t.Fatal(err)
			}
			version, subj, nattr, attrOID, exts, sigAlg := walkCSR(t, der)
			if version != 0 {
				t.Errorf("version %d, want 0 (v1)", version)
			}
			if !bytes.Equal(subj, []byte{0x30, 0x00}) {
				t.Errorf("subject %x, want empty SEQUENCE", subj)
			}
			if nattr != 1 || !attrOID.Equal(attest.OIDExtensionRequest) {
				t.Errorf("%d attributes (%v), want one extensionRequest", nattr, attrOID)
			}
			if !sigAlg.Equal(tc.sigAlg) {
				t.Errorf("signature algorithm %v, want %v", sigAlg, tc.sigAlg)
			}
			evOID, _ := attest.EvidenceOID(tc.kind)
			if len(exts) != 2 {
				t.Fatalf("%d extensions, want evidence + workload", len(exts))
			}
			if !exts[0].oid.Equal(evOID) || exts[0].hasCritical || !bytes.Equal(exts[0].value, tc.evidence) {
				t.Errorf("evidence extension %+v", exts[0])
			}
			if !exts[1].oid.Equal(attest.OIDWorkload) || exts[1].hasCritical || !bytes.Equal(exts[1].value, wantW) {
				t.Errorf("workload extension %+v", exts[1])
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(csr.RawSubjectPublicKeyInfo, s.spki) {
				t.Error("SPKI is not the keep key")
			}
			if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) != 0 {
				t.Error("CSR requests SANs")
			}
		})
	}
}

func TestEvidenceBindsCSRKey(t *testing.T) {
	for _, kind := range []attest.Kind{attest.KindSGX, attest.KindSNP} {
		p := &fakeProvider{kind: kind, ev: []byte{0x30, 0x00}}
		s, err := newKeySigner(kind)
		if err != nil {
			t.Fatal(err)
		}
		w := &certext.Workload{WasmSHA256: make([]byte, 32)}
		wext, err := w.Extension()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := gatherEvidence(t.Context(), p, kind, s, wext.Value)
		if err != nil {
			t.Fatal(err)
		}
		der, err := createCSR(s, kind, ev, w)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := x509.ParseCertificateRequest(der)
		key := attest.ReportData(kind, csr.RawSubjectPublicKeyInfo)
		n := attest.ReportDataLen(kind)
		if !bytes.Equal(p.got[:n], key[:n]) {
			t.Errorf("%s: report data %x does not start with the key binding %x", kind, p.got, key[:n])
		}
		var csrWorkload []byte
		for _, e := range csr.Extensions {
			if e.Id.Equal(attest.OIDWorkload) {
				csrWorkload = e.Value
			}
		}
		if bound, err := attest.CheckWorkloadBinding(kind, p.got[:], csrWorkload); !bound || err != nil {
			t.Errorf("%s: report data %x does not bind the CSR's workload: %v", kind, p.got, err)
		}
	}
}

func TestNoneEvidenceMustBeEmpty(t *testing.T) {
	s, _ := newKeySigner(attest.KindNone)
	if _, err := gatherEvidence(t.Context(), &fakeProvider{kind: attest.KindNone, ev: []byte{1}}, attest.KindNone, s, nil); err == nil {
		t.Fatal("non-empty KVM evidence accepted")
	}
}

func TestUpstreamExactCSR(t *testing.T) {
	s, _ := newKeySigner(attest.KindNone)
	der, err := createCSR(s, attest.KindNone, []byte{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, nattr, _, exts, _ := walkCSR(t, der)
	if nattr != 1 || len(exts) != 1 || !exts[0].oid.Equal(attest.OIDEvidenceKVM) || exts[0].hasCritical || len(exts[0].value) != 0 {
		t.Fatalf("upstream CSR: %d attributes, extensions %+v", nattr, exts)
	}
}

// TestCSRLayoutMatchesUpstreamVectors compares the Keep's CSRs with CSRs
// that upstream Enarx made on real hardware: the same version, subject,
// attribute and evidence extension encoding, and signature algorithm; the
// Keep only adds the workload identity after the evidence.
func TestCSRLayoutMatchesUpstreamVectors(t *testing.T) {
	for file, kind := range map[string]attest.Kind{
		"testdata/upstream/milan.signed.crl.csr":                 attest.KindSNP,
		"testdata/upstream/icelake.signed.tcb.crl.single.i5.csr": attest.KindSGX,
	} {
		up, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		uv, usubj, unattr, uoid, uexts, ualg := walkCSR(t, up)
		s, err := newKeySigner(kind)
		if err != nil {
			t.Fatal(err)
		}
		w := testWorkload()
		ours, err := createCSR(s, kind, uexts[0].value, &w)
		if err != nil {
			t.Fatal(err)
		}
		ov, osubj, onattr, ooid, oexts, oalg := walkCSR(t, ours)
		if uv != ov || !bytes.Equal(usubj, osubj) || unattr != onattr || !uoid.Equal(ooid) || !ualg.Equal(oalg) {
			t.Errorf("%s: upstream (v%d, subject %x, %d attributes, %v, %v) vs ours (v%d, %x, %d, %v, %v)",
				file, uv, usubj, unattr, uoid, ualg, ov, osubj, onattr, ooid, oalg)
		}
		if len(uexts) != 1 || len(oexts) != 2 {
			t.Fatalf("%s: %d upstream and %d own extensions", file, len(uexts), len(oexts))
		}
		if !uexts[0].oid.Equal(oexts[0].oid) || uexts[0].hasCritical != oexts[0].hasCritical || !bytes.Equal(uexts[0].value, oexts[0].value) {
			t.Errorf("%s: evidence extension differs", file)
		}
		ucsr, err := x509.ParseCertificateRequest(up)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(ucsr.RawSubjectPublicKeyInfo), len(s.spki); got != want {
			t.Errorf("%s: SPKI %d bytes upstream, %d ours", file, got, want)
		}
	}
}
