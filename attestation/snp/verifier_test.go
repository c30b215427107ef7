package snp

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stewardPolicy is testdata/steward.toml's [snp] table.
func stewardPolicy(t testing.TB) *Policy {
	abiReq, err := semver.NewConstraint(">=1.51")
	if err != nil {
		t.Fatal(err)
	}
	sme := uint8(1)
	return &Policy{
		Signers:      [][]byte{mustHex(t, "7dc22240a8344fce6ba5f22ffbedabc52d4123ae0ba1c59796e521b953916b503f223b15c4429e7d8c5489ad71f1e193")},
		IDKeyDigests: [][]byte{mustHex(t, "d71a4d1da440d515cd69fbb1314acf4221726e82768a8bf6e4a4063ed542ac78349c8145b4666a4242a91a374387b473")},
		Measurements: [][]byte{mustHex(t, "ff717ae719840c93c1fca3b7db96488454c3c21b43531488eecff51cfed3febcd91da8be87a4cbcbc52a3bae770987c3")},
		ABI:          abiReq,
		Flags:        &Flags{SMT: true},
		PlatformInfo: &sme,
	}
}

func milanRequest(t testing.TB) *attest.VerifyRequest {
	t.Helper()
	csr, ext, err := vectors.ParseCSR(vectors.MilanCSR)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.VerifyRequest{CSR: csr, Extension: ext, Now: vectors.Time}
}

func newVerifier(t testing.TB, p *Policy) *Verifier {
	t.Helper()
	v, err := New(Options{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMilanAccepted(t *testing.T) {
	v := newVerifier(t, stewardPolicy(t))
	for i := range 2 { // cold and cached
		c, err := v.Verify(context.Background(), milanRequest(t))
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if c.Kind != attest.KindSNP || !c.HardwareBacked || c.Debug {
			t.Errorf("claims %+v", c)
		}
		if hex.EncodeToString(c.Measurement)[:8] != "ff717ae7" || hex.EncodeToString(c.Signer)[:8] != "7dc22240" {
			t.Errorf("measurement %x signer %x", c.Measurement, c.Signer)
		}
		if c.TCBStatus != "tcb=5d06000000000002 bl=2 tee=0 snp=6 ucode=93" {
			t.Errorf("TCB status %q", c.TCBStatus)
		}
	}
	if v.chains.Len() != 1 {
		t.Errorf("cache holds %d chains, want 1", v.chains.Len())
	}
	// No [snp] table: structural checks only, still accepted.
	if _, err := newVerifier(t, nil).Verify(context.Background(), milanRequest(t)); err != nil {
		t.Fatalf("nil policy: %v", err)
	}
}

// withEvidence returns a copy of req whose evidence is mutated by f.
func withEvidence(t testing.TB, req *attest.VerifyRequest, f func(e *envelope.SnpEvidence)) *attest.VerifyRequest {
	t.Helper()
	e, err := envelope.DecodeSnpEvidence(req.Extension.Value)
	if err != nil {
		t.Fatal(err)
	}
	f(e)
	der, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := *req
	out.Extension.Value = der
	return &out
}

func crlIndex(t testing.TB, e *envelope.SnpEvidence, product string) int {
	for i, c := range e.CRLs {
		if c.URL == "https://kdsintf.amd.com/vcek/v1/"+product+"/crl" {
			return i
		}
	}
	t.Fatalf("no %s CRL", product)
	return -1
}

// csrWithKey builds a CSR signed by a fresh key of curve carrying ext.
func csrWithKey(t testing.TB, curve elliptic.Curve, ext pkix.Extension) *x509.CertificateRequest {
	t.Helper()
	csr, _, _, err := vectors.NewCSR(curve, ext)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestMilanRejections(t *testing.T) {
	base := milanRequest(t)
	flipReport := func(off int) func(e *envelope.SnpEvidence) {
		return func(e *envelope.SnpEvidence) { e.Report[off] ^= 1 }
	}
	other := mustHex(t, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	cases := []struct {
		name   string
		req    func() *attest.VerifyRequest
		policy func(p *Policy)
		code   string
	}{
		{"measurement byte", func() *attest.VerifyRequest { return withEvidence(t, base, flipReport(0x90)) }, nil, CodeReportSignature},
		{"report data byte", func() *attest.VerifyRequest { return withEvidence(t, base, flipReport(0x50)) }, nil, CodeReportSignature},
		{"signature R byte", func() *attest.VerifyRequest { return withEvidence(t, base, flipReport(0x2A0)) }, nil, CodeReportSignature},
		{"signature algo", func() *attest.VerifyRequest { return withEvidence(t, base, flipReport(0x34)) }, nil, CodeReportSignatureAlgo},
		{"version 1", func() *attest.VerifyRequest {
			return withEvidence(t, base, func(e *envelope.SnpEvidence) { e.Report[0] = 1 })
		}, nil, CodeReportVersion},
		{"reserved policy bit clear", func() *attest.VerifyRequest {
			return withEvidence(t, base, func(e *envelope.SnpEvidence) { e.Report[0x0A] &^= 2 })
		}, nil, CodeReportFormat},
		{"VCEK signature byte", func() *attest.VerifyRequest {
			return withEvidence(t, base, func(e *envelope.SnpEvidence) { e.VCEK[len(e.VCEK)-1] ^= 1 })
		}, nil, CodeVCEKChain},
		{"VCEK TBS byte", func() *attest.VerifyRequest {
			// A byte inside the VCEK's public key.
			return withEvidence(t, base, func(e *envelope.SnpEvidence) { e.VCEK[300] ^= 1 })
		}, nil, CodeVCEKChain},
		{"Milan CRL signature byte", func() *attest.VerifyRequest {
			return withEvidence(t, base, func(e *envelope.SnpEvidence) {
				c := e.CRLs[crlIndex(t, e, "Milan")].CRL
				c[len(c)-1] ^= 1
			})
		}, nil, CodeCRLSignature},
		{"Milan CRL missing", func() *attest.VerifyRequest {
			return withEvidence(t, base, func(e *envelope.SnpEvidence) {
				e.CRLs = e.CRLs[crlIndex(t, e, "Genoa") : crlIndex(t, e, "Genoa")+1]
			})
		}, nil, CodeCRLMissing},
		{"clock after CRL expiry", func() *attest.VerifyRequest {
			r := *base
			r.Now = time.Date(2023, 5, 10, 0, 0, 0, 0, time.UTC)
			return &r
		}, nil, CodeCRLExpired},
		{"clock before VCEK issue", func() *attest.VerifyRequest {
			r := *base
			r.Now = time.Date(2022, 9, 1, 0, 0, 0, 0, time.UTC)
			return &r
		}, nil, CodeVCEKExpired},
		{"clock after VCEK expiry", func() *attest.VerifyRequest {
			r := *base
			r.Now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			return &r
		}, nil, CodeVCEKExpired},
		{"CSR key swapped", func() *attest.VerifyRequest {
			r := *base
			r.CSR = csrWithKey(t, elliptic.P384(), base.Extension)
			return &r
		}, nil, CodeBinding},
		{"CSR key P-256", func() *attest.VerifyRequest {
			r := *base
			r.CSR = csrWithKey(t, elliptic.P256(), base.Extension)
			return &r
		}, nil, CodeCSRKey},
		{"critical extension", func() *attest.VerifyRequest {
			r := *base
			r.Extension.Critical = true
			return &r
		}, nil, CodeExtensionCritical},
		{"truncated evidence", func() *attest.VerifyRequest {
			r := *base
			r.Extension.Value = base.Extension.Value[:len(base.Extension.Value)-10]
			return &r
		}, nil, CodeEvidenceDecode},
		{"oversized evidence", func() *attest.VerifyRequest {
			r := *base
			r.Extension.Value = make([]byte, envelope.MaxEvidenceSize+1)
			return &r
		}, nil, CodeEvidenceTooLarge},
		{"policy measurement", milanReq(base), func(p *Policy) { p.Measurements = [][]byte{other} }, CodePolicyMeasurement},
		{"policy measurement denied", milanReq(base), func(p *Policy) { p.MeasurementDenylist = p.Measurements }, CodePolicyMeasurementDenied},
		{"policy signer", milanReq(base), func(p *Policy) { p.Signers = [][]byte{other} }, CodePolicySigner},
		{"policy id key", milanReq(base), func(p *Policy) { p.IDKeyDigests = [][]byte{other} }, CodePolicyIDKey},
		{"policy id key denied", milanReq(base), func(p *Policy) { p.IDKeyDenylist = p.IDKeyDigests }, CodePolicyIDKeyDenied},
		{"policy abi", milanReq(base), func(p *Policy) { p.ABI, _ = semver.NewConstraint(">254.0") }, CodePolicyABI},
		{"policy flags", milanReq(base), func(p *Policy) { p.Flags = &Flags{SMT: true, SingleSocket: true} }, CodePolicyFlags},
		{"policy platform info", milanReq(base), func(p *Policy) { x := uint8(2); p.PlatformInfo = &x }, CodePolicyPlatformInfo},
		{"policy guest svn", milanReq(base), func(p *Policy) { p.MinimumGuestSVN = 2 }, CodePolicyGuestSVN},
		{"policy minimum TCB", milanReq(base), func(p *Policy) { p.MinimumTCB = kds.TCBParts{BlSpl: 2, SnpSpl: 7, UcodeSpl: 93} }, CodeTCBMinimum},
		{"policy report version", milanReq(base), func(p *Policy) { p.MinReportVersion = 3 }, CodeReportVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := stewardPolicy(t)
			if c.policy != nil {
				c.policy(p)
			}
			v := newVerifier(t, p)
			_, err := v.Verify(context.Background(), c.req())
			r, ok := attest.AsRejection(err)
			if !ok {
				t.Fatalf("got %v, want rejection %s", err, c.code)
			}
			if r.Code != c.code {
				t.Fatalf("got %v, want code %s", err, c.code)
			}
		})
	}
}

func milanReq(base *attest.VerifyRequest) func() *attest.VerifyRequest {
	return func() *attest.VerifyRequest { return base }
}

// TestDebugModeSkipsBinding: upstream's debug mode skips the key binding.
func TestDebugModeSkipsBinding(t *testing.T) {
	base := milanRequest(t)
	r := *base
	r.CSR = csrWithKey(t, elliptic.P384(), base.Extension)
	r.Debug = true
	c, err := newVerifier(t, stewardPolicy(t)).Verify(context.Background(), &r)
	if err != nil {
		t.Fatalf("debug mode: %v", err)
	}
	// The key is not bound: the claims must say debug (attest.Claims).
	if !c.Debug {
		t.Fatalf("claims %+v: accepted in debug mode without the key binding but not marked debug", c)
	}
}

// TestRevokedGenoaASK: upstream's embedded Genoa ASK (serial 0x020001) is
// revoked by the Genoa CRL that the Milan evidence carries.
func TestRevokedGenoaASK(t *testing.T) {
	path, err := vectors.PKIPath(vectors.GenoaPKIPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := envelope.DecodeSnpEvidence(vectors.Evidence(vectors.MilanCSR))
	if err != nil {
		t.Fatal(err)
	}
	vcek, err := x509.ParseCertificate(e.VCEK)
	if err != nil {
		t.Fatal(err)
	}
	root := &Root{ProductLine: "Genoa", ARK: path[0], ASK: path[1]}
	_, err = checkRevocation(root, vcek, e.CRLs)
	if r, ok := attest.AsRejection(err); !ok || r.Code != CodeCRLRevoked {
		t.Fatalf("got %v, want %s", err, CodeCRLRevoked)
	}
	// go-sev-guest's current Genoa ASK is not revoked by the same CRL.
	roots, err := DefaultRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		if r.ProductLine == "Genoa" {
			if bytes.Equal(r.ASK.Raw, path[1].Raw) {
				t.Fatal("default roots contain upstream's revoked Genoa ASK")
			}
			if _, err := checkRevocation(&r, vcek, e.CRLs); err != nil {
				t.Fatalf("current Genoa ASK: %v", err)
			}
		}
	}
	// And a verifier that trusts only upstream's Genoa pair does not accept the Milan VCEK.
	v, err := New(Options{Roots: []Root{*root}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), milanRequest(t)); err == nil {
		t.Fatal("accepted Milan evidence with only Genoa roots")
	}
}

func TestConcurrentSameChain(t *testing.T) {
	v := newVerifier(t, stewardPolicy(t))
	good := milanRequest(t)
	bad := withEvidence(t, good, func(e *envelope.SnpEvidence) { e.Report[0x90] ^= 1 })
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := good
			if i%2 == 1 {
				req = bad
			}
			_, errs[i] = v.Verify(context.Background(), req)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%2 == 1) != (err != nil) {
			t.Errorf("request %d: %v", i, err)
		}
	}
}
