package tdx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
)

// Offsets in the fixture's quote (v4, certification data type 6).
const (
	quoteSigAt    = tdxquote.SignedAt      // the quote signature, r ‖ s
	attKeyAt      = tdxquote.SignedAt + 64 // the attestation key, X ‖ Y
	qeReportAt    = tdxquote.SignedAt + tdxquote.CertDataAt
	qeReportSigAt = qeReportAt + 384
	qeReportData  = qeReportAt + 320 // the QE report's REPORTDATA
	qeAuthDataAt  = qeReportAt + tdxquote.QEAuthAt + 2
)

// TestFixtureAccepted: the genuine emulated evidence passes every stage,
// go-tdx-guest's matching and a policy pinning its measurements, and the
// claims are the quote's. The re-signing the negative tests use, applied
// without a change, is accepted too: what those tests change is what is
// refused, not the re-signing.
func TestFixtureAccepted(t *testing.T) {
	f := loadFixture(t)
	rd := f.reportData(t)
	pinned := &Policy{
		MRTD:         [][]byte{fixtureTD.MRTD[:]},
		RTMR:         [4][][]byte{{fixtureTD.RTMRs[0][:]}, {fixtureTD.RTMRs[1][:]}, {fixtureTD.RTMRs[2][:]}, {fixtureTD.RTMRs[3][:]}},
		MRSEAM:       [][]byte{make([]byte, 48)},
		TDAttributes: make([]byte, 8),
	}
	resigned := func(t *testing.T) []byte {
		ev := f.decode(t)
		same := func(b []byte) []byte { return b }
		ev.TCB.Report = f.resignDoc(t, ev.TCB.Report, "tcbInfo", same)
		ev.QEIdentity.Report = f.resignDoc(t, ev.QEIdentity.Report, "enclaveIdentity", same)
		f.resignPCKCRL(t, ev)
		return marshal(t, ev)
	}
	freshQuote := func(t *testing.T) []byte {
		ev := f.decode(t)
		q, err := f.root.SignQuote(rd, fixtureTD)
		if err != nil {
			t.Fatal(err)
		}
		ev.Quote = q
		return marshal(t, ev)
	}
	forgedChainControl := func(t *testing.T) []byte {
		ev := f.decode(t)
		ev.Quote = withPCKChain(t, ev.Quote, f.root.PCK, f.root.PCKCA, f.root.Root)
		return marshal(t, ev)
	}
	for _, tc := range []struct {
		name     string
		policy   *Policy
		evidence func(t *testing.T) []byte
	}{
		{name: "genuine", evidence: func(*testing.T) []byte { return f.evidence }},
		{name: "genuine, pinned policy", policy: pinned, evidence: func(*testing.T) []byte { return f.evidence }},
		{name: "collateral and PCK CRL re-signed unchanged", evidence: resigned},
		{name: "quote signed afresh", evidence: freshQuote},
		{name: "PCK chain re-encoded unchanged", evidence: forgedChainControl},
	} {
		for vname, v := range f.verifiers(t, tc.policy) {
			t.Run(tc.name+"/"+vname, func(t *testing.T) {
				c, err := v.Verify(context.Background(), f.request(t, tc.evidence(t), nil))
				if err != nil {
					t.Fatalf("the emulated fixture is rejected: %v", err)
				}
				if c.Kind != attest.KindTDX || c.HardwareBacked || c.Debug || c.TCBStatus != "UpToDate" ||
					!bytes.Equal(c.Measurement, fixtureTD.MRTD[:]) || !bytes.Equal(c.ReportData, rd[:]) || !bytes.Equal(c.Signer, make([]byte, 48)) {
					t.Fatalf("claims %+v", c)
				}
			})
		}
	}
}

// TestFixtureSignedBytes: every one-bit change of the signed header and TD
// quote body is refused; in the body, by the quote signature.
func TestFixtureSignedBytes(t *testing.T) {
	f := loadFixture(t)
	v := f.verifiers(t, nil)["Roots"]
	base := f.request(t, f.evidence, nil)
	for i := 0; i < signedLen; i++ {
		ev := f.decode(t)
		ev.Quote[i] ^= 1 << (i % 8)
		req := *base
		req.Extension.Value = marshal(t, ev)
		_, err := v.Verify(context.Background(), &req)
		if err == nil || (i >= 48 && !hasCode(err, CodeQuoteSignature)) {
			t.Errorf("quote byte %d changed: %v", i, err)
		}
	}
}

// TestFixtureRejected: forgeries of each part the verifier checks, made
// with the fixture's own keys where a signature would otherwise be what
// fails.
func TestFixtureRejected(t *testing.T) {
	f := loadFixture(t)
	rd := f.reportData(t)
	otherCSR, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// ev changes the genuine evidence with change.
	ev := func(change func(t *testing.T, ev *envelope.TdxEvidence)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			e := f.decode(t)
			change(t, e)
			return marshal(t, e)
		}
	}
	// ownAttKey replaces the attestation key by one the forger holds and
	// signs the (unchanged) quote with it; withReport also makes the QE
	// report data commit to it, which the PCK signature then no longer
	// covers.
	ownAttKey := func(withReport bool) func(t *testing.T, e *envelope.TdxEvidence) {
		return func(t *testing.T, e *envelope.TdxEvidence) {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := k.PublicKey.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			q := e.Quote
			copy(q[attKeyAt:attKeyAt+64], pub[1:])
			copy(q[quoteSigAt:quoteSigAt+64], rawSignRS(t, k, q[:signedLen]))
			if withReport {
				h := sha256.Sum256(append(pub[1:], q[qeAuthDataAt:qeAuthDataAt+32]...))
				copy(q[qeReportData:qeReportData+32], h[:])
			}
		}
	}
	status := func(from, to string) func([]byte) []byte {
		return func(b []byte) []byte {
			out := bytes.Replace(b, []byte(`"tcbStatus":"`+from+`"`), []byte(`"tcbStatus":"`+to+`"`), 1)
			if bytes.Equal(out, b) {
				t.Fatalf("no tcbStatus %q in %s", from, b)
			}
			return out
		}
	}
	cases := []struct {
		name     string
		evidence func(t *testing.T) []byte
		csrKey   *ecdsa.PrivateKey
		later    time.Duration
		code     string
	}{
		{name: "quote signature byte", evidence: ev(func(_ *testing.T, e *envelope.TdxEvidence) { e.Quote[quoteSigAt+10] ^= 1 }), code: CodeQuoteSignature},
		{name: "QE report byte", evidence: ev(func(_ *testing.T, e *envelope.TdxEvidence) { e.Quote[qeReportAt+16] ^= 1 }), code: CodeQEReport},
		{name: "QE report signature byte", evidence: ev(func(_ *testing.T, e *envelope.TdxEvidence) { e.Quote[qeReportSigAt+40] ^= 1 }), code: CodeQEReport},
		{name: "QE authentication data byte", evidence: ev(func(_ *testing.T, e *envelope.TdxEvidence) { e.Quote[qeAuthDataAt] ^= 1 }), code: CodeQEReport},
		{name: "forger's attestation key", evidence: ev(ownAttKey(false)), code: CodeQEReport},
		{name: "forger's attestation key in the QE report", evidence: ev(ownAttKey(true)), code: CodeQEReport},
		{name: "PCK certificate byte", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			pck := bytes.Clone(f.root.PCK.Raw)
			pck[len(pck)-5] ^= 1 // in its signature
			e.Quote = withPCKChainDER(t, e.Quote, pck, f.root.PCKCA.Raw, f.root.Root.Raw)
		}), code: CodePCKChain},
		// The PCK key (so the QE report still verifies) certified under a
		// hierarchy with Intel's names and the forger's keys.
		{name: "PCK chain under a forged root", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.Quote = withPCKChain(t, e.Quote, forgeHierarchy(t, f.root.PCK, f.root.PCKCA, f.root.Root)...)
		}), code: CodePCKChain},
		// Intel's PCK and intermediate, and a root of Intel's name and the
		// forger's key: the intermediate still verifies to the trusted
		// root, but the carried root would be the key stage 4 checks the
		// root CRL (is the intermediate revoked?) with.
		{name: "genuine PCK chain carrying a forged root", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			forged := forgeHierarchy(t, f.root.PCK, f.root.PCKCA, f.root.Root)[2]
			e.Quote = withPCKChain(t, e.Quote, f.root.PCK, f.root.PCKCA, forged)
		}), code: CodePCKChain},
		{name: "TCB Info chain carrying a forged root", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.TCB.Certs[1] = forgeHierarchy(t, f.root.PCK, f.root.PCKCA, f.root.Root)[2].Raw
		}), code: CodeTCBInfo},
		{name: "QE Identity chain carrying a forged root", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.QEIdentity.Certs[1] = forgeHierarchy(t, f.root.PCK, f.root.PCKCA, f.root.Root)[2].Raw
		}), code: CodeQEIdentity},
		{name: "PCK chain without its root", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.Quote = withPCKChain(t, e.Quote, f.root.PCK, f.root.PCKCA)
		}), code: CodePCKChain},
		{name: "another CSR key", evidence: func(*testing.T) []byte { return f.evidence }, csrKey: otherCSR, code: CodeBinding},
		{name: "genuine quote for another key", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			q, err := f.root.SignQuote(attest.ReportData(attest.KindTDX, spkiOf(t, otherCSR)), fixtureTD)
			if err != nil {
				t.Fatal(err)
			}
			e.Quote = q
		}), code: CodeBinding},
		{name: "debug TD", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			o := fixtureTD
			o.Debug = true
			q, err := f.root.SignQuote(rd, o)
			if err != nil {
				t.Fatal(err)
			}
			e.Quote = q
		}), code: CodePolicyDebug},
		{name: "TCB level OutOfDate (signed)", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.TCB.Report = f.resignDoc(t, e.TCB.Report, "tcbInfo", status("UpToDate", "OutOfDate"))
		}), code: CodeTCBStatus},
		{name: "TCB level Revoked (signed)", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.TCB.Report = f.resignDoc(t, e.TCB.Report, "tcbInfo", status("UpToDate", "Revoked"))
		}), code: CodeTCBStatus},
		{name: "QE level OutOfDate (signed)", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.QEIdentity.Report = f.resignDoc(t, e.QEIdentity.Report, "enclaveIdentity", status("UpToDate", "OutOfDate"))
		}), code: CodeTCBStatus},
		{name: "TCB Info for another FMSPC (signed)", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			e.TCB.Report = f.resignDoc(t, e.TCB.Report, "tcbInfo", func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"fmspc":"00806f050000"`), []byte(`"fmspc":"00906f050000"`), 1)
			})
		}), code: CodeTCBStatus},
		{name: "TCB Info byte after signing", evidence: ev(func(_ *testing.T, e *envelope.TdxEvidence) {
			e.TCB.Report = bytes.Replace(e.TCB.Report, []byte(`"UpToDate"`), []byte(`"OutOfDate"`), 1)
		}), code: CodeTCBInfo},
		{name: "PCK revoked (signed CRL)", evidence: ev(func(t *testing.T, e *envelope.TdxEvidence) {
			f.resignPCKCRL(t, e, f.root.PCK)
		}), code: CodeCRLRevoked},
		{name: "collateral expired", evidence: func(*testing.T) []byte { return f.evidence }, later: 8 * 24 * time.Hour, code: CodeTCBInfoExpired},
		{name: "before the hierarchy", evidence: func(*testing.T) []byte { return f.evidence }, later: -3 * time.Hour, code: CodePCKExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evidence := c.evidence(t)
			for vname, v := range f.verifiers(t, nil) {
				req := f.request(t, evidence, c.csrKey)
				req.Now = req.Now.Add(c.later)
				_, err := v.Verify(context.Background(), req)
				if !hasCode(err, c.code) {
					t.Errorf("%s: got %v, want %s", vname, err, c.code)
				}
			}
		})
	}
}

// withPCKChain returns quote with its PCK chain replaced by certs (PEM),
// the size fields adjusted; the header, body and signatures are kept.
func withPCKChain(t testing.TB, quote []byte, certs ...*x509.Certificate) []byte {
	t.Helper()
	ders := make([][]byte, len(certs))
	for i, c := range certs {
		ders[i] = c.Raw
	}
	return withPCKChainDER(t, quote, ders...)
}

func withPCKChainDER(t testing.TB, quote []byte, ders ...[]byte) []byte {
	t.Helper()
	var chain []byte
	for _, d := range ders {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	p, err := abi.QuoteToProto(quote)
	if err != nil {
		t.Fatal(err)
	}
	q := p.(*pb.QuoteV4)
	cd := q.GetSignedData().GetCertificationData()
	qe := cd.GetQeReportCertificationData()
	qe.PckCertificateChainData.PckCertChain = chain
	qe.PckCertificateChainData.Size = uint32(len(chain))
	cd.Size = uint32(384 + 64 + 2 + len(qe.GetQeAuthData().GetData()) + 2 + 4 + len(chain))
	q.SignedDataSize = 64 + 64 + 2 + 4 + cd.Size
	out, err := abi.QuoteToAbiBytes(q)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forgeHierarchy re-issues pck under a root and intermediate with the
// names, extensions and validity of ca and root but keys of the forger's;
// pck keeps its key.
func forgeHierarchy(t testing.TB, pck, ca, root *x509.Certificate) []*x509.Certificate {
	t.Helper()
	issue := func(tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
		tm := *tmpl
		tm.ExtraExtensions = nil
		for _, e := range tmpl.Extensions {
			if e.Id.Equal(pcs.OidSgxExtension) {
				tm.ExtraExtensions = append(tm.ExtraExtensions, pkix.Extension{Id: e.Id, Value: e.Value})
			}
		}
		tm.AuthorityKeyId, tm.SubjectKeyId = nil, nil
		if parent == nil { // self-signed
			tm.PublicKey = pub
			parent = &tm
		}
		der, err := x509.CreateCertificate(rand.Reader, &tm, parent, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fRoot := issue(root, nil, &rootKey.PublicKey, rootKey)
	fCA := issue(ca, fRoot, &caKey.PublicKey, rootKey)
	return []*x509.Certificate{issue(pck, fCA, pck.PublicKey, caKey), fCA, fRoot}
}
