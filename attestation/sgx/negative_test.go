package sgx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/crl"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
)

const (
	i5   = "icelake.signed.tcb.crl.single.i5.csr"
	xeon = "icelake.signed.tcb.crl.multi.xeon.csr"
)

// evidence decodes a vector's SgxEvidence (a fresh copy each call).
func evidence(t testing.TB, name string) *envelope.SgxEvidence {
	t.Helper()
	ev, err := envelope.DecodeSgxEvidence(request(t, name).Extension.Value)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func withEvidence(t testing.TB, name string, ev *envelope.SgxEvidence) *attest.VerifyRequest {
	t.Helper()
	der, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, name)
	req.Extension.Value = der
	return req
}

// setCertData replaces the certification data of a quote, fixing both
// length fields.
func setCertData(t testing.TB, q []byte, certData []byte) []byte {
	t.Helper()
	pq, err := quote.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	fixed := quote.SignedSize + 4 + 576 + 2 + len(pq.QEAuthData) + 2
	out := slices.Clone(q[:fixed])
	out = binary.LittleEndian.AppendUint32(out, uint32(len(certData)))
	out = append(out, certData...)
	binary.LittleEndian.PutUint32(out[quote.SignedSize:], uint32(len(out)-quote.SignedSize-4))
	return out
}

// pemChain returns the DER certificates of a quote's PCK chain.
func pemChain(t testing.TB, q []byte) [][]byte {
	t.Helper()
	pq, err := quote.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	ders, err := pq.PCKChain()
	if err != nil {
		t.Fatal(err)
	}
	return ders
}

func encodePEM(ders [][]byte) []byte {
	var b bytes.Buffer
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return b.Bytes()
}

// flipTBS flips a byte inside a certificate's signed part (its serial
// number region), keeping the DER valid.
func flipTBS(der []byte) []byte {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	out := slices.Clone(der)
	i := bytes.Index(out, c.RawTBSCertificate) + len(c.RawTBSCertificate) - 40
	out[i] ^= 0x01
	return out
}

// flipLast flips the last byte of a DER structure (inside its signature).
func flipLast(b []byte) []byte {
	out := slices.Clone(b)
	out[len(out)-1] ^= 0x01
	return out
}

func expectCode(t *testing.T, v attest.Verifier, req *attest.VerifyRequest, code string) {
	t.Helper()
	_, err := v.Verify(context.Background(), req)
	if err == nil {
		t.Fatalf("accepted, want rejection %s", code)
	}
	r, ok := attest.AsRejection(err)
	if !ok {
		t.Fatalf("error %v is not a Rejection (want %s)", err, code)
	}
	if r.Code != code {
		t.Fatalf("rejected with %s, want %s: %v", r.Code, code, err)
	}
}

func p(v int) *int { return &v }

func TestNegative(t *testing.T) {
	good := testPolicy(t)
	verifier := NewVerifier(Options{Policy: good})
	mrenclave := good.Hash[0]
	mrsigner := good.Signer[0]
	other := strings.Repeat("00", 32)

	type tc struct {
		name   string
		vector string
		policy *Policy // nil: good
		req    func(t *testing.T) *attest.VerifyRequest
		code   string
	}
	mutQuote := func(vec string, f func(q []byte) []byte) func(t *testing.T) *attest.VerifyRequest {
		return func(t *testing.T) *attest.VerifyRequest {
			ev := evidence(t, vec)
			ev.Quote = f(slices.Clone(ev.Quote))
			return withEvidence(t, vec, ev)
		}
	}
	flipAt := func(vec string, off int) func(t *testing.T) *attest.VerifyRequest {
		return mutQuote(vec, func(q []byte) []byte { q[off] ^= 0x01; return q })
	}
	mutEv := func(vec string, f func(t *testing.T, ev *envelope.SgxEvidence)) func(t *testing.T) *attest.VerifyRequest {
		return func(t *testing.T) *attest.VerifyRequest {
			ev := evidence(t, vec)
			f(t, ev)
			return withEvidence(t, vec, ev)
		}
	}
	atTime := func(vec string, at time.Time) func(t *testing.T) *attest.VerifyRequest {
		return func(t *testing.T) *attest.VerifyRequest {
			r := request(t, vec)
			r.Now = at
			return r
		}
	}
	plain := func(vec string) func(t *testing.T) *attest.VerifyRequest {
		return func(t *testing.T) *attest.VerifyRequest { return request(t, vec) }
	}
	const sig = quote.SignedSize + 4 // start of the signature data
	cases := []tc{
		// The quote and its signatures.
		{name: "mrenclave byte", vector: i5, req: flipAt(i5, 112), code: "sgx.isv.signature"},
		{name: "report data byte", vector: xeon, req: flipAt(xeon, 368), code: "sgx.isv.signature"},
		{name: "isv signature", vector: i5, req: flipAt(i5, sig+5), code: "sgx.isv.signature"},
		{name: "attestation key", vector: i5, req: flipAt(i5, sig+64), code: "sgx.qe.reportdata"},
		{name: "qe report", vector: i5, req: flipAt(i5, sig+128+10), code: "sgx.qe.signature"},
		{name: "qe report signature", vector: xeon, req: flipAt(xeon, sig+512+3), code: "sgx.qe.signature"},
		{name: "qe auth data", vector: i5, req: flipAt(i5, sig+578), code: "sgx.qe.reportdata"},
		{name: "version", vector: i5, req: flipAt(i5, 0), code: "sgx.quote.header"},
		{name: "key type", vector: i5, req: flipAt(i5, 2), code: "sgx.quote.header"},
		{name: "tee type", vector: i5, req: flipAt(i5, 4), code: "sgx.quote.header"},
		{name: "qe vendor", vector: xeon, req: flipAt(xeon, 12), code: "sgx.quote.header"},
		{name: "cert data type", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			pq, _ := quote.Parse(q)
			q[sig+578+len(pq.QEAuthData)] = 6
			return q
		}), code: "sgx.quote.certdata"},
		{name: "truncated", vector: i5, req: mutQuote(i5, func(q []byte) []byte { return q[:len(q)-1] }), code: "sgx.quote.truncated"},
		{name: "truncated header", vector: i5, req: mutQuote(i5, func(q []byte) []byte { return q[:100] }), code: "sgx.quote.truncated"},
		{name: "trailing byte", vector: xeon, req: mutQuote(xeon, func(q []byte) []byte { return append(q, 0) }), code: "sgx.quote.oversized"},
		{name: "huge", vector: xeon, req: mutQuote(xeon, func(q []byte) []byte { return append(q, make([]byte, quote.MaxSize)...) }), code: "sgx.quote.oversized"},
		{name: "empty quote", vector: xeon, req: mutQuote(xeon, func(q []byte) []byte { return nil }), code: "sgx.quote.truncated"},

		// PCK chain.
		{name: "pck cert", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			ders := pemChain(t, q)
			ders[0] = flipTBS(ders[0])
			return setCertData(t, q, encodePEM(ders))
		}), code: "sgx.pck.chain"},
		{name: "pck signature", vector: xeon, req: mutQuote(xeon, func(q []byte) []byte {
			ders := pemChain(t, q)
			ders[0] = flipLast(ders[0])
			return setCertData(t, q, encodePEM(ders))
		}), code: "sgx.pck.chain"},
		{name: "intermediate cert", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			ders := pemChain(t, q)
			ders[1] = flipTBS(ders[1])
			return setCertData(t, q, encodePEM(ders))
		}), code: "sgx.pck.chain"},
		{name: "pck chain without root", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			return setCertData(t, q, encodePEM(pemChain(t, q)[:2]))
		}), code: "sgx.pck.chain"},
		{name: "pck chain garbage", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			return setCertData(t, q, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
		}), code: "sgx.pck.malformed"},
		// The certification data is signed by nobody: text around the
		// certificates is the host's, and the PCK chain is only what
		// decodes as certificates. A block encoding/pem cannot decode is
		// not skipped.
		{name: "pck chain after a broken PEM block", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			return setCertData(t, q, append([]byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"), encodePEM(pemChain(t, q))...))
		}), code: "sgx.pck.malformed"},
		{name: "pck chain after a stray BEGIN line", vector: xeon, req: mutQuote(xeon, func(q []byte) []byte {
			return setCertData(t, q, append([]byte("-----BEGIN CERTIFICATE-----\n"), encodePEM(pemChain(t, q))...))
		}), code: "sgx.pck.malformed"},
		{name: "pck chain from other platform", vector: i5, req: mutQuote(i5, func(q []byte) []byte {
			return setCertData(t, q, encodePEM(pemChain(t, evidence(t, xeon).Quote)))
		}), code: "sgx.qe.signature"},

		// TCB Info.
		{name: "tcb info json", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB.Report = bytes.Replace(ev.TCB.Report, []byte(`"tcbEvaluationDataNumber":14`), []byte(`"tcbEvaluationDataNumber":15`), 1)
		}), code: "sgx.tcb.signature"},
		{name: "tcb info status", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB.Report = bytes.ReplaceAll(ev.TCB.Report, []byte(`"OutOfDate"`), []byte(`"UpToDate"`))
		}), code: "sgx.tcb.signature"},
		{name: "tcb signature", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			r := ev.TCB.Report
			i := len(r) - 3 // inside the signature's hex digits
			if r[i] == '0' {
				r[i] = '1'
			} else {
				r[i] = '0'
			}
		}), code: "sgx.tcb.signature"},
		{name: "tcb info malformed", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB.Report = ev.TCB.Report[:len(ev.TCB.Report)-1]
		}), code: "sgx.tcb.malformed"},
		{name: "tcb signing cert", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB.Certs[0] = flipTBS(ev.TCB.Certs[0])
		}), code: "sgx.tcb.chain"},
		{name: "tcb chain without root", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB.Certs = ev.TCB.Certs[:1]
		}), code: "sgx.tcb.chain"},
		{name: "tcb info of other platform", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.TCB = evidence(t, xeon).TCB
		}), code: "sgx.tcb.fmspc"},

		// CRLs.
		{name: "root crl signature", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs[0].CRL = flipLast(ev.CRLs[0].CRL)
		}), code: "sgx.crl.signature"},
		{name: "processor crl signature", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs[1].CRL = flipLast(ev.CRLs[1].CRL)
		}), code: "sgx.crl.signature"},
		{name: "platform crl signature", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs[2].CRL = flipLast(ev.CRLs[2].CRL)
		}), code: "sgx.crl.signature"},
		{name: "crl malformed", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs[1].CRL = []byte{0x30, 0x03, 0x02, 0x01, 0x01}
		}), code: "sgx.crl.malformed"},
		{name: "pck crl dropped", vector: xeon, req: mutEv(xeon, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs = ev.CRLs[:2]
		}), code: "sgx.crl.missing"},
		{name: "root crl dropped", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs = ev.CRLs[1:]
		}), code: "sgx.crl.missing"},
		{name: "no crls", vector: i5, req: mutEv(i5, func(t *testing.T, ev *envelope.SgxEvidence) {
			ev.CRLs = nil
		}), code: "sgx.crl.missing"},

		// The verification clock.
		{name: "crl expired", vector: i5, req: atTime(i5, time.Date(2023, 2, 20, 0, 0, 0, 0, time.UTC)), code: "sgx.crl.expired"},
		{name: "tcb info expired", vector: xeon, req: atTime(xeon, time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC)), code: "sgx.tcb.expired"},
		{name: "tcb info from the future", vector: i5, req: atTime(i5, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)), code: "sgx.tcb.future"},

		// The envelope and the CSR.
		{name: "critical extension", vector: i5, req: func(t *testing.T) *attest.VerifyRequest {
			r := request(t, i5)
			r.Extension.Critical = true
			return r
		}, code: "sgx.evidence.critical"},
		{name: "not der", vector: i5, req: func(t *testing.T) *attest.VerifyRequest {
			r := request(t, i5)
			r.Extension.Value = r.Extension.Value[:len(r.Extension.Value)-1]
			return r
		}, code: "sgx.evidence.malformed"},
		{name: "wrong oid", vector: i5, req: func(t *testing.T) *attest.VerifyRequest {
			r := request(t, i5)
			r.Extension.Id = attest.OIDEvidenceSNP
			return r
		}, code: "sgx.evidence.oid"},
		{name: "csr key swapped", vector: i5, req: func(t *testing.T) *attest.VerifyRequest {
			r := request(t, i5)
			r.Extension = request(t, xeon).Extension
			return r
		}, code: "sgx.binding"},
		{name: "csr key p384", vector: i5, req: func(t *testing.T) *attest.VerifyRequest {
			r := request(t, i5)
			r.CSR = newCSR(t, elliptic.P384())
			return r
		}, code: "sgx.csr.key"},

		// Policy.
		{name: "other mrenclave", vector: i5, policy: &Policy{Hash: []string{other}}, req: plain(i5), code: "sgx.policy.mrenclave"},
		{name: "other mrsigner", vector: i5, policy: &Policy{Signer: []string{other}}, req: plain(i5), code: "sgx.policy.mrsigner"},
		{name: "denied mrenclave", vector: xeon, policy: &Policy{HashBlacklist: []string{mrenclave}}, req: plain(xeon), code: "sgx.policy.mrenclave_denied"},
		{name: "other product id", vector: i5, policy: &Policy{Signer: []string{mrsigner}, EnclaveProductID: p(1), AllowedAdvisories: good.AllowedAdvisories}, req: plain(i5), code: "sgx.policy.product_id"},
		{name: "higher svn", vector: xeon, policy: &Policy{Signer: []string{mrsigner}, EnclaveSecurityVersion: p(9999), AllowedAdvisories: good.AllowedAdvisories}, req: plain(xeon), code: "sgx.policy.svn"},
		{name: "no allowed advisories", vector: i5, policy: &Policy{Signer: []string{mrsigner}}, req: plain(i5), code: "sgx.tcb.status"},
		{name: "missing one advisory", vector: xeon, policy: &Policy{Signer: []string{mrsigner}, AllowedAdvisories: []string{"INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615"}}, req: plain(xeon), code: "sgx.tcb.advisory"},
		{name: "bogus advisory", vector: i5, policy: &Policy{Signer: []string{mrsigner}, AllowedAdvisories: []string{"bogus-1234"}}, req: plain(i5), code: "sgx.tcb.advisory"},
		{name: "misc_select with EXINFO", vector: i5, policy: &Policy{Signer: []string{mrsigner}, MiscSelect: []string{"EXINFO"}, AllowedAdvisories: good.AllowedAdvisories}, req: plain(i5), code: ""},
		{name: "invalid policy", vector: i5, policy: &Policy{}, req: plain(i5), code: "sgx.policy.invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := verifier
			if c.policy != nil {
				v = NewVerifier(Options{Policy: c.policy})
			}
			req := c.req(t)
			if c.code == "" {
				if _, err := v.Verify(context.Background(), req); err != nil {
					t.Fatal(err)
				}
				return
			}
			expectCode(t, v, req, c.code)
		})
	}
}

// TestNoSGXTable: without an [sgx] table only UpToDate platforms pass, so
// both (OutOfDate) vectors are rejected.
func TestNoSGXTable(t *testing.T) {
	v := NewVerifier(Options{})
	for _, name := range names {
		expectCode(t, v, request(t, name), "sgx.tcb.status")
	}
}

// TestUnusedCRLIgnored: a CRL that belongs to no certificate on the chain
// (the platform CA's CRL for the i5, whose PCK is from the processor CA) is
// not consulted, like upstream; tampering with it changes nothing.
func TestUnusedCRLIgnored(t *testing.T) {
	ev := evidence(t, i5)
	ev.CRLs[2].CRL = flipLast(ev.CRLs[2].CRL)
	if _, err := NewVerifier(Options{Policy: testPolicy(t)}).Verify(context.Background(), withEvidence(t, i5, ev)); err != nil {
		t.Fatal(err)
	}
}

// TestXeonPCKCRLByIssuer: the Xeon PCK names the PCS v3 CRL URL, which no
// entry has (Enarx downloads v4); its platform CA CRL is found by issuer, so
// PCK revocation is enforced for it (upstream skips it).
func TestXeonPCKCRLByIssuer(t *testing.T) {
	ev := evidence(t, xeon)
	q, err := quote.Parse(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(Options{})
	pck, err := v.verifyPCKChain(q.CertData)
	if err != nil {
		t.Fatal(err)
	}
	if dp := pck.chain[0].CRLDistributionPoints; len(dp) != 1 || !strings.Contains(dp[0], "/v3/") {
		t.Fatalf("Xeon PCK distribution points %v", dp)
	}
	var entries []crl.Entry
	for _, e := range ev.CRLs {
		entries = append(entries, crl.Entry{URL: e.URL, DER: e.CRL})
	}
	res, err := crl.Check(pck.chain, entries, crl.Options{RequireEvery: true})
	if err != nil {
		t.Fatal(err)
	}
	var byIssuer int
	for _, u := range res.Used {
		if u.ByIssuer && strings.Contains(u.URL, "ca=platform") {
			byIssuer++
		}
	}
	if byIssuer != 1 {
		t.Fatalf("platform CA CRL not applied by issuer: %+v", res.Used)
	}
}

// TestCRLMatchedByIssuer: an entry under an unexpected URL still applies
// when its issuer matches.
func TestCRLMatchedByIssuer(t *testing.T) {
	ev := evidence(t, i5)
	ev.CRLs[1].URL = "https://example.invalid/elsewhere.crl"
	if _, err := NewVerifier(Options{Policy: testPolicy(t)}).Verify(context.Background(), withEvidence(t, i5, ev)); err != nil {
		t.Fatal(err)
	}
	ev.CRLs[1].CRL = flipLast(ev.CRLs[1].CRL)
	expectCode(t, NewVerifier(Options{Policy: testPolicy(t)}), withEvidence(t, i5, ev), "sgx.crl.signature")
}

func TestDebugModeSkipsBinding(t *testing.T) {
	r := request(t, i5)
	r.Extension = request(t, xeon).Extension
	r.Debug = true
	c, err := NewVerifier(Options{Policy: testPolicy(t)}).Verify(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Debug {
		t.Fatal("claims do not record the Steward's debug mode")
	}
}

func newCSR(t testing.TB, curve elliptic.Curve) *x509.CertificateRequest {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// The refresh hints name a command that exists: SGX Keeps are upstream
// Enarx's, and this build has no `enarx platform sgx`.
func TestExpiryHintsNameUpstreamCommands(t *testing.T) {
	v := NewVerifier(Options{Policy: testPolicy(t)})
	for _, c := range []struct {
		vec  string
		at   time.Time
		hint string
	}{
		{i5, time.Date(2023, 2, 20, 0, 0, 0, 0, time.UTC), "upstream Enarx: `enarx platform sgx cache-crl`"},
		{xeon, time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), "upstream Enarx: `enarx platform sgx cache-tcb`"},
	} {
		r := request(t, c.vec)
		r.Now = c.at
		_, err := v.Verify(context.Background(), r)
		if err == nil || !strings.Contains(err.Error(), c.hint) {
			t.Errorf("%s at %s: got %v, want a hint %q", c.vec, c.at, err, c.hint)
		}
	}
}
