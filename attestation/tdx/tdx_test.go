package tdx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"

	"google.golang.org/protobuf/proto"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
	"github.com/enarx-go/enarx/evidence/emulated"
)

var sampleTime = vectors.TDXSampleTime

func sampleEvidence(t testing.TB) *envelope.TdxEvidence {
	t.Helper()
	e, err := vectors.TDXSample()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func request(t testing.TB, ev *envelope.TdxEvidence, curve elliptic.Curve) *attest.VerifyRequest {
	t.Helper()
	der, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ext := pkix.Extension{Id: attest.OIDEvidenceTDX, Value: der}
	csr, _, _, err := vectors.NewCSR(curve, ext)
	if err != nil {
		t.Fatal(err)
	}
	// The sample quote's REPORTDATA binds no key of ours: only debug mode
	// (which skips the binding, as upstream) can accept it.
	return &attest.VerifyRequest{CSR: csr, Extension: ext, Now: sampleTime, Debug: true}
}

func hasCode(err error, code string) bool {
	r, ok := attest.AsRejection(err)
	return ok && r.Code == code
}

func mustNew(t testing.TB, p *Policy) *Verifier {
	v, err := New(Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSampleQuote: go-tdx-guest's real sample quote and collateral pass
// every cryptographic check (PCK chain, CRLs, TCB Info and QE Identity
// signatures, QE report, quote signature) and then fail TCB level matching:
// upstream updated the sample TCB Info's SVNs past the quote's (see
// go-tdx-guest's TestNegativeRawQuoteVerifyWithCollateral). No consistent
// real TDX sample is public, so the accept path of the policy is tested on
// the real, parsed quote body in TestCheckBody.
func TestSampleQuote(t *testing.T) {
	_, err := mustNew(t, nil).Verify(context.Background(), request(t, sampleEvidence(t), elliptic.P384()))
	if !hasCode(err, CodeTCBStatus) {
		t.Fatalf("got %v, want %s", err, CodeTCBStatus)
	}
}

func sampleBody(t testing.TB) *pb.TDQuoteBody {
	q, err := abi.QuoteToProto(testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	return proto.Clone(q.(*pb.QuoteV4).GetTdQuoteBody()).(*pb.TDQuoteBody)
}

func TestCheckBody(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	bound := func() *pb.TDQuoteBody {
		b := sampleBody(t)
		rd := attest.ReportData(attest.KindTDX, spki)
		b.ReportData = rd[:]
		return b
	}
	own := bound()
	pinned := &Policy{
		MRTD: [][]byte{own.GetMrTd()}, MRSEAM: [][]byte{own.GetMrSeam()},
		RTMR:         [4][][]byte{{own.GetRtmrs()[0]}, {own.GetRtmrs()[1]}, {own.GetRtmrs()[2]}, {own.GetRtmrs()[3]}},
		TDAttributes: own.GetTdAttributes(),
	}
	if err := mustNew(t, pinned).checkBody(bound(), spki, false); err != nil {
		t.Fatalf("pinned policy: %v", err)
	}
	other := bytes.Repeat([]byte{0xab}, 48)
	debugBody := func() *pb.TDQuoteBody { b := bound(); b.TdAttributes[0] |= 1; return b }
	cases := []struct {
		name   string
		body   *pb.TDQuoteBody
		debug  bool
		policy *Policy
		code   string
	}{
		{"binding", sampleBody(t), false, nil, CodeBinding},
		{"debug TD", debugBody(), false, nil, CodePolicyDebug},
		{"MRTD", bound(), false, &Policy{MRTD: [][]byte{other}}, CodePolicyMRTD},
		{"MRSEAM", bound(), false, &Policy{MRSEAM: [][]byte{other}}, CodePolicyMRSEAM},
		{"RTMR2", bound(), false, &Policy{RTMR: [4][][]byte{2: {other}}}, CodePolicyRTMR},
		{"MRCONFIGID", bound(), false, &Policy{MRConfigID: [][]byte{other}}, CodePolicyMRConfigID},
		{"MROWNER", bound(), false, &Policy{MROwner: [][]byte{other}}, CodePolicyMROwner},
		{"TD attributes", bound(), false, &Policy{TDAttributes: []byte{0, 0, 0, 0, 0, 0, 0, 0x40}}, CodePolicyAttributes},
	}
	for _, c := range cases {
		err := mustNew(t, c.policy).checkBody(c.body, spki, c.debug)
		if !hasCode(err, c.code) {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
	// A refused RTMR names the TD's value, so that an operator can pin it
	// from a measured launch (the measurements are not computed offline).
	if err := mustNew(t, &Policy{RTMR: [4][][]byte{1: {other}}}).checkBody(bound(), spki, false); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("RTMR1 %x is not in tdx.rtmr1", own.GetRtmrs()[1])) {
		t.Errorf("RTMR1 refused: %v; want it to name the TD's RTMR1 %x", err, own.GetRtmrs()[1])
	}
	// Debug TDs pass in the Steward's debug mode or with allow_debug.
	if err := mustNew(t, nil).checkBody(debugBody(), spki, true); err != nil {
		t.Errorf("steward debug mode: %v", err)
	}
	if err := mustNew(t, &Policy{AllowDebug: true}).checkBody(debugBody(), spki, false); err != nil {
		t.Errorf("allow_debug: %v", err)
	}
}

func TestSampleQuoteRejected(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(e *envelope.TdxEvidence)
		req    func(r *attest.VerifyRequest)
		policy *Policy
		curve  elliptic.Curve
		code   string
	}{
		{name: "quote body byte", mutate: func(e *envelope.TdxEvidence) { e.Quote[48+200] ^= 1 }, code: CodeQuoteSignature},
		{name: "quote signature byte", mutate: func(e *envelope.TdxEvidence) { e.Quote[636] ^= 1 }, code: CodeQuoteSignature},
		{name: "quote version 5", mutate: func(e *envelope.TdxEvidence) { e.Quote[0] = 5 }, code: CodeQuoteVersion},
		// The version is a little-endian uint16: 0x0104 is not 4.
		{name: "quote version 260", mutate: func(e *envelope.TdxEvidence) { e.Quote[1] = 1 }, code: CodeQuoteVersion},
		{name: "truncated quote", mutate: func(e *envelope.TdxEvidence) { e.Quote = e.Quote[:600] }, code: CodeQuoteFormat},
		{name: "TCB info byte", mutate: func(e *envelope.TdxEvidence) { e.TCB.Report[40] ^= 1 }, code: CodeTCBInfo},
		{name: "QE identity byte", mutate: func(e *envelope.TdxEvidence) { e.QEIdentity.Report[40] ^= 1 }, code: CodeQEIdentity},
		{name: "PCK CRL byte", mutate: func(e *envelope.TdxEvidence) { c := e.CRLs[1].CRL; c[len(c)-3] ^= 1 }, code: CodeCRLInvalid},
		{name: "PCK CRL missing", mutate: func(e *envelope.TdxEvidence) { e.CRLs = e.CRLs[:1] }, code: CodeCRLMissing},
		{name: "TCB chain short", mutate: func(e *envelope.TdxEvidence) { e.TCB.Certs = e.TCB.Certs[:1] }, code: CodeTCBInfo},
		{name: "clock after collateral", req: func(r *attest.VerifyRequest) { r.Now = sampleTime.AddDate(0, 2, 0) }, code: CodeTCBInfoExpired},
		{name: "P-256 key", curve: elliptic.P256(), code: CodeCSRKey},
		{name: "critical", req: func(r *attest.VerifyRequest) { r.Extension.Critical = true }, code: CodeExtensionCritical},
		{name: "truncated evidence", req: func(r *attest.VerifyRequest) { r.Extension.Value = r.Extension.Value[:100] }, code: CodeEvidenceDecode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := sampleEvidence(t)
			if c.mutate != nil {
				c.mutate(ev)
			}
			curve := c.curve
			if curve == nil {
				curve = elliptic.P384()
			}
			req := request(t, ev, curve)
			if c.req != nil {
				c.req(req)
			}
			_, err := mustNew(t, c.policy).Verify(context.Background(), req)
			if !hasCode(err, c.code) {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

// emulatedRequest builds evidence from the emulated Intel hierarchy of
// evidence/emulated (a TD described by o, changed by f after signing),
// bound to a fresh P-384 CSR key, verified now.
func emulatedRequest(t *testing.T, e *emulated.TDXRoot, o emulated.TDXOptions, f func(ev *envelope.TdxEvidence)) *attest.VerifyRequest {
	t.Helper()
	req, err := vectors.EmulatedTDXRequest(e, o, time.Now(), f)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestEmulatedAccepted(t *testing.T) {
	e, err := emulated.NewTDXRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(Options{Roots: []*x509.Certificate{e.Root}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), emulatedRequest(t, e, emulated.TDXOptions{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != attest.KindTDX || c.HardwareBacked || c.Debug || c.TCBStatus != "UpToDate" {
		t.Fatalf("claims %+v", c)
	}
	// A debug-mode Steward skips the key binding: the claims say debug.
	dreq := emulatedRequest(t, e, emulated.TDXOptions{}, nil)
	dreq.Debug = true
	if c, err := v.Verify(context.Background(), dreq); err != nil || !c.Debug {
		t.Fatalf("debug-mode steward: %v, claims %+v; want accepted and marked debug", err, c)
	}
	// Intel's root does not accept the emulated hierarchy.
	if _, err := mustNew(t, nil).Verify(context.Background(), emulatedRequest(t, e, emulated.TDXOptions{}, nil)); !hasCode(err, CodePCKChain) {
		t.Fatalf("Intel root: %v", err)
	}
	other := bytes.Repeat([]byte{0xab}, 48)
	cases := []struct {
		name   string
		td     emulated.TDXOptions
		f      func(ev *envelope.TdxEvidence)
		later  time.Duration // verify this long after the evidence was made
		policy *Policy
		code   string
	}{
		{name: "debug TD", td: emulated.TDXOptions{Debug: true}, code: CodePolicyDebug},
		// Each stage's code, found by the stage and not by error text.
		{name: "PCK chain expired", later: 8 * 365 * 24 * time.Hour, code: CodePCKExpired},
		{name: "collateral expired", later: 8 * 24 * time.Hour, code: CodeTCBInfoExpired},
		{name: "root CRL missing", f: func(ev *envelope.TdxEvidence) { ev.CRLs = ev.CRLs[1:] }, code: CodeCRLMissing},
		{name: "PCK CRL from another key", f: func(ev *envelope.TdxEvidence) { ev.CRLs[1].CRL = ev.CRLs[0].CRL }, code: CodeCRLInvalid},
		{name: "QE report signature", f: func(ev *envelope.TdxEvidence) {
			ev.Quote[48+584+4+64+64+2+4+100] ^= 1 // inside the QE report
		}, code: CodeQEReport},
		// A TDX module older than the TCB Info's only level: found by
		// go-tdx-guest's matching, the last stage.
		{name: "TDX module below every TCB level", td: emulated.TDXOptions{TEETCBSVN: [16]byte{1}}, code: CodeTCBStatus},
		{name: "policy MRTD", policy: &Policy{MRTD: [][]byte{other}}, code: CodePolicyMRTD},
		{name: "policy minimum TEE TCB SVN", policy: &Policy{MinimumTEETCBSVN: bytes.Repeat([]byte{1}, 16)}, code: CodeValidate},
		{name: "quote body after signing", f: func(ev *envelope.TdxEvidence) { ev.Quote[48+136] ^= 1 }, code: CodeQuoteSignature},
		{name: "TCB info after signing", f: func(ev *envelope.TdxEvidence) {
			ev.TCB.Report = bytes.Replace(ev.TCB.Report, []byte(`"UpToDate"`), []byte(`"OutOfDate"`), 1)
		}, code: CodeTCBInfo},
		{name: "QE identity after signing", f: func(ev *envelope.TdxEvidence) {
			ev.QEIdentity.Report = bytes.Replace(ev.QEIdentity.Report, []byte(`"isvprodid":2`), []byte(`"isvprodid":3`), 1)
		}, code: CodeQEIdentity},
		// A forged body beside the signed one, under a name that
		// encoding/json (ours and go-tdx-guest's) matches to the same
		// field: every TCB level lowered to SVN 0, so the module below
		// every genuine level would match. Accepted before the envelope
		// was checked strictly.
		{name: "forged TCB info beside the signed one", td: emulated.TDXOptions{TEETCBSVN: [16]byte{1}}, f: func(ev *envelope.TdxEvidence) {
			ev.TCB.Report = forgeBeside(t, ev.TCB.Report, "tcbInfo", "TCBINFO", func(body map[string]any) {
				zeroSVNs(body["tcbLevels"])
			})
		}, code: CodeTCBInfo},
		{name: "forged QE identity beside the signed one", f: func(ev *envelope.TdxEvidence) {
			ev.QEIdentity.Report = forgeBeside(t, ev.QEIdentity.Report, "enclaveIdentity", "EnclaveIdentity", func(body map[string]any) {
				body["mrsigner"] = strings.Repeat("AB", 32)
			})
		}, code: CodeQEIdentity},
		// Length fields go-tdx-guest v0.3.1 slices by without a check
		// (tdxquote.CheckLayout): a panic in its parser before.
		{name: "signed data size 0", f: func(ev *envelope.TdxEvidence) {
			binary.LittleEndian.PutUint32(ev.Quote[tdxquote.SignedSizeAt:], 0)
		}, code: CodeQuoteFormat},
		{name: "QE authentication data past the end", f: func(ev *envelope.TdxEvidence) {
			binary.LittleEndian.PutUint16(ev.Quote[tdxquote.SignedAt+tdxquote.CertDataAt+tdxquote.QEAuthAt:], 0xffff)
		}, code: CodeQuoteFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := New(Options{Policy: c.policy, Roots: []*x509.Certificate{e.Root}})
			if err != nil {
				t.Fatal(err)
			}
			req := emulatedRequest(t, e, c.td, c.f)
			req.Now = req.Now.Add(c.later)
			_, err = v.Verify(context.Background(), req)
			if !hasCode(err, c.code) {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

// forgeBeside adds to the PCS document doc a copy of its signed body
// (member field) under the name forged, changed by change.
func forgeBeside(t *testing.T, doc []byte, field, forged string, change func(map[string]any)) []byte {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(doc, &outer); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(outer[field], &body); err != nil {
		t.Fatal(err)
	}
	change(body)
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(doc, '}')
	return slices.Concat(doc[:end], []byte(`,"`+forged+`":`), b, doc[end:])
}

// zeroSVNs sets every "svn" and "pcesvn" beneath v to 0.
func zeroSVNs(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "svn" || k == "pcesvn" {
				v[k] = 0
			} else {
				zeroSVNs(x)
			}
		}
	case []any:
		for _, x := range v {
			zeroSVNs(x)
		}
	}
}
