package conformance

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/policy"
	"github.com/enarx-go/enarx/attestation/snp"
	"github.com/enarx-go/enarx/attestation/tdx"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// pki is a test root and a Steward CA certificate it issued: the Steward
// is not self-issued, so it runs in production (non-debug) mode.
type pki struct {
	ca   *steward.CA
	root *x509.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, root := stewardtest.ProductionCA(t, elliptic.P256())
	return &pki{ca: ca, root: root}
}

// server starts a Steward on 127.0.0.1 with the policy document, the
// verification clock at, and options for the verifiers.
func (p *pki) server(t testing.TB, doc []byte, at time.Time, opts policy.Options) string {
	t.Helper()
	pol, err := policy.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pol.Verifiers(opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := steward.New(steward.Config{CA: p.ca, Verifiers: vs, VerifyTime: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	if !strings.HasPrefix(hs.URL, "http://127.0.0.1:") {
		t.Fatalf("server not on 127.0.0.1: %s", hs.URL)
	}
	return hs.URL
}

type reply struct {
	status int
	body   []byte
}

func post(t testing.TB, url string, csr []byte) reply {
	t.Helper()
	resp, err := http.Post(url, steward.ContentTypePKCS10, bytes.NewReader(csr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, body}
}

// issued checks a 200 reply and returns the leaf after verifying it chains
// to the test root.
func (p *pki) issued(t testing.TB, r reply) *x509.Certificate {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var raws []asn1.RawValue
	if rest, err := asn1.Unmarshal(r.body, &raws); err != nil || len(rest) != 0 {
		t.Fatalf("reply is not a SEQUENCE OF Certificate: %v", err)
	}
	var certs []*x509.Certificate
	for _, raw := range raws {
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	leaf := certs[len(certs)-1]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(p.root)
	for _, c := range certs[:len(certs)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("issued certificate does not chain to the root: %v", err)
	}
	return leaf
}

func attested(t testing.TB, leaf *x509.Certificate) *certext.AttestedAs {
	t.Helper()
	_, a, err := certext.FromCertificate(leaf)
	if err != nil || a == nil {
		t.Fatalf("no attested-as extension: %v", err)
	}
	return a
}

// csr builds a CSR for a fresh key of curve carrying ext (upstream layout).
func csr(t testing.TB, curve elliptic.Curve, ext pkix.Extension) []byte {
	t.Helper()
	_, der, _, err := vectors.NewCSR(curve, ext)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func ext(t testing.TB, csrDER []byte) pkix.Extension {
	t.Helper()
	_, e, err := vectors.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestRealEvidenceIssued: the three real CSRs are certified, and each
// certificate records what was attested.
func TestRealEvidenceIssued(t *testing.T) {
	p := newPKI(t)
	url := p.server(t, vectors.StewardTOML, vectors.Time, policy.Options{})
	cases := []struct {
		name        string
		csr         []byte
		kind        attest.Kind
		measurement string
		signer      string
		tcb         string
	}{
		{"milan", vectors.MilanCSR, attest.KindSNP,
			"ff717ae719840c93c1fca3b7db96488454c3c21b43531488eecff51cfed3febcd91da8be87a4cbcbc52a3bae770987c3",
			"7dc22240a8344fce6ba5f22ffbedabc52d4123ae0ba1c59796e521b953916b503f223b15c4429e7d8c5489ad71f1e193",
			"tcb=5d06000000000002 bl=2 tee=0 snp=6 ucode=93"},
		{"i5", vectors.SGXi5CSR, attest.KindSGX,
			"4046ea255f0455131a024e1265ac1ebd131fdbd1240f1712a00381f6f04e8c15",
			"7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a", "OutOfDate"},
		{"xeon", vectors.SGXXeonCSR, attest.KindSGX,
			"4046ea255f0455131a024e1265ac1ebd131fdbd1240f1712a00381f6f04e8c15",
			"7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a", "OutOfDate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leaf := p.issued(t, post(t, url, c.csr))
			a := attested(t, leaf)
			if a.StewardDebug {
				t.Error("issued in debug mode")
			}
			cl := a.Claims
			if cl.Kind != c.kind || !cl.HardwareBacked || cl.Debug {
				t.Errorf("claims %+v", cl)
			}
			if hexOf(cl.Measurement) != c.measurement || hexOf(cl.Signer) != c.signer {
				t.Errorf("measurement %x signer %x", cl.Measurement, cl.Signer)
			}
			if cl.TCBStatus != c.tcb {
				t.Errorf("TCB status %q, want %q", cl.TCBStatus, c.tcb)
			}
			req, _, _ := vectors.ParseCSR(c.csr)
			if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, req.RawSubjectPublicKeyInfo) {
				t.Error("the certificate is not for the CSR's key")
			}
		})
	}
}

// negative is one rejected request and its specific reason code.
type negative struct {
	name string
	csr  func(t *testing.T) []byte
	doc  []byte         // policy; nil means the testdata policy
	at   time.Time      // verification clock; zero means vectors.Time
	opts policy.Options // verifier options
	code string
}

// mutateSNP returns the Milan evidence changed by f, in a CSR of a fresh
// P-384 key (the original key is not available, so the binding would also
// fail; every mutation here is caught before the binding check).
func mutateSNP(f func(e *envelope.SnpEvidence)) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		e, err := envelope.DecodeSnpEvidence(vectors.Evidence(vectors.MilanCSR))
		if err != nil {
			t.Fatal(err)
		}
		f(e)
		der, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return csr(t, elliptic.P384(), pkix.Extension{Id: attest.OIDEvidenceSNP, Value: der})
	}
}

func mutateSGX(f func(e *envelope.SgxEvidence)) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		e, err := envelope.DecodeSgxEvidence(vectors.Evidence(vectors.SGXi5CSR))
		if err != nil {
			t.Fatal(err)
		}
		f(e)
		der, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return csr(t, elliptic.P256(), pkix.Extension{Id: attest.OIDEvidenceSGX, Value: der})
	}
}

func mutateTDX(f func(e *envelope.TdxEvidence)) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		e, err := vectors.TDXSample()
		if err != nil {
			t.Fatal(err)
		}
		if f != nil {
			f(e)
		}
		der, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return csr(t, elliptic.P384(), pkix.Extension{Id: attest.OIDEvidenceTDX, Value: der})
	}
}

func rawValue(t *testing.T, oid asn1.ObjectIdentifier, curve elliptic.Curve, v []byte) []byte {
	return csr(t, curve, pkix.Extension{Id: oid, Value: v})
}

func same(b []byte) func(t *testing.T) []byte { return func(*testing.T) []byte { return b } }

// replace returns the testdata policy with old replaced by new (must occur).
func replace(t testing.TB, old, new string) []byte {
	s := string(vectors.StewardTOML)
	if !strings.Contains(s, old) {
		t.Fatalf("policy has no %q", old)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

func crlOf(t *testing.T, l envelope.CrlList, urlPart string) []byte {
	for _, c := range l {
		if strings.Contains(c.URL, urlPart) {
			return c.CRL
		}
	}
	t.Fatalf("no CRL with %q", urlPart)
	return nil
}

// withTDX is the testdata policy (upstream's, which has no [tdx] table,
// so it refuses TDX evidence) with a [tdx] table admitting the all-zero
// MRTD of the emulated TDs.
var withTDX = append(bytes.Clone(vectors.StewardTOML), "\n[tdx]\nmrtd = [\""+strings.Repeat("00", 48)+"\"]\nallow_any_kernel = true\n"...)

// snpOnly keeps the [snp] table of the testdata policy.
func snpOnly(t testing.TB) []byte {
	s := string(vectors.StewardTOML)
	return []byte(s[strings.Index(s, "[snp]"):])
}

func TestRejections(t *testing.T) {
	p := newPKI(t)
	other48 := strings.Repeat("ab", 48)
	other32 := strings.Repeat("ab", 32)
	milanExt := ext(t, vectors.MilanCSR)
	i5Ext := ext(t, vectors.SGXi5CSR)
	emu := newEmulatedSNP(t)
	emuTDX := newEmulatedTDX(t)

	cases := []negative{
		// SEV-SNP: one byte flipped.
		{name: "snp report measurement byte", csr: mutateSNP(func(e *envelope.SnpEvidence) { e.Report[0x90] ^= 1 }), code: snp.CodeReportSignature},
		{name: "snp report signature byte", csr: mutateSNP(func(e *envelope.SnpEvidence) { e.Report[0x2A0] ^= 1 }), code: snp.CodeReportSignature},
		{name: "snp VCEK signature byte", csr: mutateSNP(func(e *envelope.SnpEvidence) { e.VCEK[len(e.VCEK)-1] ^= 1 }), code: snp.CodeVCEKChain},
		{name: "snp Milan CRL signature byte", csr: mutateSNP(func(e *envelope.SnpEvidence) {
			c := crlOf(t, e.CRLs, "Milan")
			c[len(c)-1] ^= 1
		}), code: snp.CodeCRLSignature},
		{name: "snp Milan CRL missing", csr: mutateSNP(func(e *envelope.SnpEvidence) {
			e.CRLs = envelope.CrlList{{URL: "https://kdsintf.amd.com/vcek/v1/Genoa/crl", CRL: crlOf(t, e.CRLs, "Genoa")}}
		}), code: snp.CodeCRLMissing},
		// SEV-SNP: policy.
		{name: "snp policy other measurement", csr: same(vectors.MilanCSR), doc: replace(t, `hash = ["ff717ae7`, `hash = ["`+other48+`", "00717ae7`), code: snp.CodePolicyMeasurement},
		{name: "snp policy measurement blacklisted", csr: same(vectors.MilanCSR), doc: replace(t, `hash = ["ff717ae7`, `hash_blacklist = ["ff717ae7`), code: snp.CodePolicyMeasurementDenied},
		{name: "snp policy other signer", csr: same(vectors.MilanCSR), doc: replace(t, `signer = ["7dc22240`, `signer = ["`+other48+`", "00c22240`), code: snp.CodePolicySigner},
		{name: "snp policy other id key digest", csr: same(vectors.MilanCSR), doc: replace(t, `id_key_digest = ["d71a4d1d`, `id_key_digest = ["`+other48+`", "001a4d1d`), code: snp.CodePolicyIDKey},
		{name: "snp policy id key blacklisted", csr: same(vectors.MilanCSR), doc: replace(t, `id_key_digest = [`, `id_key_digest_blacklist = [`), code: snp.CodePolicyIDKeyDenied},
		{name: "snp policy ABI", csr: same(vectors.MilanCSR), doc: replace(t, `abi = ">=1.51"`, `abi = ">254.0"`), code: snp.CodePolicyABI},
		{name: "snp policy flags", csr: same(vectors.MilanCSR), doc: replace(t, `policy_flags = ["SMT"]`, `policy_flags = ["SMT", "SingleSocket"]`), code: snp.CodePolicyFlags},
		{name: "snp policy platform info", csr: same(vectors.MilanCSR), doc: replace(t, `platform_info_flags = "SME"`, `platform_info_flags = "TSME"`), code: snp.CodePolicyPlatformInfo},
		{name: "snp policy guest security version", csr: same(vectors.MilanCSR), doc: replace(t, `abi = `, "minimum_guest_svn = 2\nabi = "), code: snp.CodePolicyGuestSVN},
		{name: "snp policy minimum TCB", csr: same(vectors.MilanCSR), doc: replace(t, `abi = `, "minimum_tcb = { snp = 7 }\nabi = "), code: snp.CodeTCBMinimum},
		{name: "snp policy minimum launch TCB", csr: same(vectors.MilanCSR), doc: replace(t, `abi = `, "minimum_launch_tcb = { snp = 7 }\nabi = "), code: snp.CodeTCBLaunchMinimum},
		{name: "snp policy report version 3+", csr: same(vectors.MilanCSR), doc: replace(t, `abi = `, "min_report_version = 3\nabi = "), code: snp.CodeReportVersion},
		// SEV-SNP: binding, clock, framing.
		{name: "snp CSR key swapped", csr: func(t *testing.T) []byte { return csr(t, elliptic.P384(), milanExt) }, code: snp.CodeBinding},
		{name: "snp CSR key P-256", csr: func(t *testing.T) []byte { return csr(t, elliptic.P256(), milanExt) }, code: snp.CodeCSRKey},
		{name: "snp clock after Milan CRL expiry", csr: same(vectors.MilanCSR), at: time.Date(2023, 5, 10, 0, 0, 0, 0, time.UTC), code: snp.CodeCRLExpired},
		{name: "snp truncated evidence", csr: func(t *testing.T) []byte {
			return rawValue(t, attest.OIDEvidenceSNP, elliptic.P384(), milanExt.Value[:len(milanExt.Value)/2])
		}, code: snp.CodeEvidenceDecode},
		{name: "snp oversized evidence", csr: func(t *testing.T) []byte {
			return rawValue(t, attest.OIDEvidenceSNP, elliptic.P384(), append(bytes.Clone(milanExt.Value), make([]byte, 64<<10)...))
		}, code: snp.CodeEvidenceDecode},
		{name: "snp revoked Genoa ASK path (upstream roots)", csr: same(vectors.MilanCSR), opts: policy.Options{SNPRoots: upstreamGenoaRoots(t)}, code: snp.CodeVCEKChain},
		// SEV-SNP, emulated chain (evidence/emulated, trusted explicitly).
		{name: "snp DEBUG policy bit", csr: emu.csr(func(r []byte) { r[0x0A] |= 1 << 3 }, emu.goodCRL), doc: snpOnly(t), at: emu.now, opts: emu.opts(), code: snp.CodePolicyDebug},
		{name: "snp revoked ASK (emulated)", csr: emu.csr(nil, emu.revokingCRL), doc: snpOnly(t), at: emu.now, opts: emu.opts(), code: snp.CodeCRLRevoked},
		{name: "snp REPORTED_TCB not the VCEK's", csr: emu.csr(func(r []byte) {
			for _, off := range []int{0x38, 0x180, 0x1E0, 0x1F0} {
				r[off+6] = 7
			}
		}, emu.goodCRL), doc: snpOnly(t), at: emu.now, opts: emu.opts(), code: snp.CodeTCBVCEKMismatch},
		{name: "snp CHIP_ID not the VCEK's", csr: emu.csr(func(r []byte) { r[0x1A0] ^= 1 }, emu.goodCRL), doc: snpOnly(t), at: emu.now, opts: emu.opts(), code: snp.CodeReportChipID},
		// A guest launched before a firmware update: LAUNCH_TCB SNP SPL 7
		// under REPORTED_TCB 8. minimum_tcb alone covers LAUNCH_TCB too.
		{name: "snp LAUNCH_TCB below minimum_tcb", csr: emu.csr(func(r []byte) { r[0x1F0+6] = 7 }, emu.goodCRL),
			doc: []byte(strings.Replace(string(snpOnly(t)), "abi = ", "minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }\nabi = ", 1)),
			at:  emu.now, opts: emu.opts(), code: snp.CodeTCBLaunchMinimum},
		// SGX.
		{name: "sgx quote MRENCLAVE byte", csr: mutateSGX(func(e *envelope.SgxEvidence) { e.Quote[112] ^= 1 }), code: "sgx.isv.signature"},
		{name: "sgx quote ISV signature byte", csr: mutateSGX(func(e *envelope.SgxEvidence) { e.Quote[436] ^= 1 }), code: "sgx.isv.signature"},
		{name: "sgx QE report signature byte", csr: mutateSGX(func(e *envelope.SgxEvidence) { e.Quote[436+512] ^= 1 }), code: "sgx.qe.signature"},
		{name: "sgx PCK certificate byte", csr: mutateSGX(func(e *envelope.SgxEvidence) { flipPCK(t, e.Quote) }), code: "sgx.pck.chain"},
		{name: "sgx TCB info byte", csr: mutateSGX(func(e *envelope.SgxEvidence) { flipTCBInfo(t, e.TCB.Report) }), code: "sgx.tcb.signature"},
		{name: "sgx PCK CRL signature byte", csr: mutateSGX(func(e *envelope.SgxEvidence) {
			c := crlOf(t, e.CRLs, "ca=processor")
			c[len(c)-1] ^= 1
		}), code: "sgx.crl.signature"},
		{name: "sgx policy other MRENCLAVE", csr: same(vectors.SGXi5CSR), doc: replace(t, `hash = ["4046ea25`, `hash = ["`+other32+`", "0046ea25`), code: "sgx.policy.mrenclave"},
		{name: "sgx policy other signer", csr: same(vectors.SGXi5CSR), doc: replace(t, `signer = ["7a49a07d`, `signer = ["`+other32+`", "0049a07d`), code: "sgx.policy.mrsigner"},
		{name: "sgx policy security version", csr: same(vectors.SGXi5CSR), doc: replace(t, `enclave_security_version = 0`, `enclave_security_version = 9999`), code: "sgx.policy.svn"},
		{name: "sgx policy product id", csr: same(vectors.SGXi5CSR), doc: replace(t, `enclave_product_id = 0`, `enclave_product_id = 7`), code: "sgx.policy.product_id"},
		{name: "sgx policy tcbEvaluationDataNumber", csr: same(vectors.SGXi5CSR), doc: replace(t, `enclave_product_id = 0`, "enclave_product_id = 0\nmin_tcb_evaluation_data_number = 15"), code: "sgx.tcb.eval_data_number"},
		{name: "sgx policy advisories", csr: same(vectors.SGXi5CSR), doc: replace(t, `"INTEL-SA-00289", `, ``), code: "sgx.tcb.advisory"},
		{name: "sgx without [sgx] table (OutOfDate is not UpToDate)", csr: same(vectors.SGXi5CSR), doc: snpOnly(t), code: "sgx.tcb.status"},
		{name: "sgx xeon without [sgx] table", csr: same(vectors.SGXXeonCSR), doc: snpOnly(t), code: "sgx.tcb.status"},
		{name: "sgx CSR key swapped", csr: func(t *testing.T) []byte { return csr(t, elliptic.P256(), i5Ext) }, code: "sgx.binding"},
		{name: "sgx clock after PCK CRL expiry", csr: same(vectors.SGXi5CSR), at: time.Date(2023, 2, 18, 0, 0, 0, 0, time.UTC), code: "sgx.crl.expired"},
		{name: "sgx truncated evidence", csr: func(t *testing.T) []byte {
			return rawValue(t, attest.OIDEvidenceSGX, elliptic.P256(), i5Ext.Value[:len(i5Ext.Value)-1])
		}, code: "sgx.evidence.malformed"},
		// TDX: go-tdx-guest's real sample quote and collateral (vectors.TDXSample).
		{name: "tdx sample quote TCB level", csr: mutateTDX(nil), at: vectors.TDXSampleTime, doc: withTDX, code: tdx.CodeTCBStatus},
		{name: "tdx quote body byte", csr: mutateTDX(func(e *envelope.TdxEvidence) { e.Quote[48+200] ^= 1 }), at: vectors.TDXSampleTime, doc: withTDX, code: tdx.CodeQuoteSignature},
		{name: "tdx TCB info byte", csr: mutateTDX(func(e *envelope.TdxEvidence) { e.TCB.Report[40] ^= 1 }), at: vectors.TDXSampleTime, doc: withTDX, code: tdx.CodeTCBInfo},
		{name: "tdx PCK CRL byte", csr: mutateTDX(func(e *envelope.TdxEvidence) { c := e.CRLs[1].CRL; c[len(c)-3] ^= 1 }), at: vectors.TDXSampleTime, doc: withTDX, code: tdx.CodeCRLInvalid},
		{name: "tdx clock after collateral expiry", csr: mutateTDX(nil), at: vectors.TDXSampleTime.AddDate(0, 2, 0), doc: withTDX, code: tdx.CodeTCBInfoExpired},
		{name: "tdx quote v5", csr: mutateTDX(func(e *envelope.TdxEvidence) { e.Quote[0] = 5 }), at: vectors.TDXSampleTime, doc: withTDX, code: tdx.CodeQuoteVersion},
		// TDX, emulated Intel hierarchy (fresh keys, trusted explicitly).
		{name: "tdx debug TD", csr: emuTDX.csr(emulated.TDXOptions{Debug: true}, false), at: emuTDX.now, opts: emuTDX.opts(), doc: withTDX, code: tdx.CodePolicyDebug},
		{name: "tdx CSR key swapped", csr: emuTDX.csr(emulated.TDXOptions{}, true), at: emuTDX.now, opts: emuTDX.opts(), doc: withTDX, code: tdx.CodeBinding},
		{name: "tdx policy other MRTD", csr: emuTDX.csr(emulated.TDXOptions{}, false), doc: []byte("[tdx]\nmrtd = [\"" + other48 + "\"]\nallow_any_kernel = true\n"), at: emuTDX.now, opts: emuTDX.opts(), code: tdx.CodePolicyMRTD},
		{name: "tdx without a [tdx] table (upstream's policy)", csr: emuTDX.csr(emulated.TDXOptions{}, false), at: emuTDX.now, opts: emuTDX.opts(), code: steward.CodeEvidenceUnsupported},
		{name: "tdx emulated root without trusting it", csr: emuTDX.csr(emulated.TDXOptions{}, false), at: emuTDX.now, doc: withTDX, code: tdx.CodePCKChain},
		// No hardware.
		{name: "no-hardware evidence without [none]", csr: func(t *testing.T) []byte {
			return rawValue(t, attest.OIDEvidenceKVM, elliptic.P256(), nil)
		}, code: "kvm.not-allowed"},
	}
	count := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := c.doc
			if doc == nil {
				doc = vectors.StewardTOML
			}
			at := c.at
			if at.IsZero() {
				at = vectors.Time
			}
			url := p.server(t, doc, at, c.opts)
			r := post(t, url, c.csr(t))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if !bytes.HasPrefix(r.body, []byte(c.code+": ")) {
				t.Fatalf("body %q, want code %s", r.body, c.code)
			}
			count++
		})
	}
	// The request-size limit is the Steward's, before any verifier.
	r := post(t, p.server(t, vectors.StewardTOML, vectors.Time, policy.Options{}),
		rawValue(t, attest.OIDEvidenceSNP, elliptic.P384(), make([]byte, 2<<20)))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB evidence: %d %s", r.status, r.body)
	}
	if count < 30 {
		t.Errorf("only %d negative cases ran with a specific code", count)
	}
}

// TestNoHardwareAllowed: `[none] allow = true` accepts no-hardware
// evidence and the certificate says it is not hardware-backed.
func TestNoHardwareAllowed(t *testing.T) {
	p := newPKI(t)
	url := p.server(t, []byte("[none]\nallow = true\n"), vectors.Time, policy.Options{})
	a := attested(t, p.issued(t, post(t, url, rawValue(t, attest.OIDEvidenceKVM, elliptic.P256(), nil))))
	if a.Claims.Kind != attest.KindNone || a.Claims.HardwareBacked {
		t.Fatalf("claims %+v", a.Claims)
	}
}

// TestEmulatedSNPIssued: evidence from an explicitly trusted emulated root
// is certified as not hardware-backed.
func TestEmulatedSNPIssued(t *testing.T) {
	p := newPKI(t)
	emu := newEmulatedSNP(t)
	url := p.server(t, snpOnly(t), emu.now, emu.opts())
	a := attested(t, p.issued(t, post(t, url, emu.csr(nil, emu.goodCRL)(t))))
	if a.Claims.Kind != attest.KindSNP || a.Claims.HardwareBacked {
		t.Fatalf("claims %+v", a.Claims)
	}
}

// upstreamGenoaRoots is upstream Steward's Genoa trust anchor: ARK-Genoa
// and the ASK (serial 0x020001) that AMD has revoked.
func upstreamGenoaRoots(t testing.TB) []snp.Root {
	path, err := vectors.PKIPath(vectors.GenoaPKIPath)
	if err != nil {
		t.Fatal(err)
	}
	return []snp.Root{{ProductLine: "Genoa", ARK: path[0], ASK: path[1]}}
}

// flipPCK flips a base64 character inside the PCK certificate's PEM in the
// quote's certification data (the first certificate's signature area).
func flipPCK(t *testing.T, quote []byte) {
	i := bytes.Index(quote, []byte("-----END CERTIFICATE-----"))
	if i < 20 {
		t.Fatal("no PEM in quote")
	}
	j := i - 10 // inside the last base64 line of the PCK certificate
	if quote[j] == 'A' {
		quote[j] = 'B'
	} else {
		quote[j] = 'A'
	}
}

// flipTCBInfo changes one character of the signed tcbInfo body.
func flipTCBInfo(t *testing.T, report []byte) {
	i := bytes.Index(report, []byte(`"tcbEvaluationDataNumber":`))
	if i < 0 {
		t.Fatal("no tcbEvaluationDataNumber")
	}
	j := i + len(`"tcbEvaluationDataNumber":`)
	if report[j] == '9' {
		report[j] = '8'
	} else {
		report[j] = '9'
	}
}

// emulatedSNP is upstream's Milan report moved onto the chip and TCB of
// the emulated AMD hierarchy (evidence/emulated) and signed by its VCEK,
// so that it still matches the testdata policy's [snp] table.
type emulatedSNP struct {
	root                 *emulated.SNPRoot
	now                  time.Time
	goodCRL, revokingCRL []byte
}

func newEmulatedSNP(t testing.TB) *emulatedSNP {
	root, err := emulated.NewSNPRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := &emulatedSNP{root: root, now: time.Now()}
	if m.goodCRL, err = root.SignCRL(m.now.AddDate(0, -1, 0), m.now.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if m.revokingCRL, err = root.SignCRL(m.now.AddDate(0, -1, 0), m.now.AddDate(0, 1, 0), root.ASK.SerialNumber); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *emulatedSNP) opts() policy.Options {
	return policy.Options{SNPRoots: []snp.Root{{ProductLine: emulated.ProductLine, ARK: m.root.ARK, ASK: m.root.ASK, Emulated: true}}}
}

// csr moves the Milan report onto the emulated chip and TCB, binds it to a
// fresh key, applies mutate, signs it with the emulated VCEK and wraps it
// in a CSR.
func (m *emulatedSNP) csr(mutate func(r []byte), crl []byte) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		e, err := envelope.DecodeSnpEvidence(vectors.Evidence(vectors.MilanCSR))
		if err != nil {
			t.Fatal(err)
		}
		exts, err := kds.VcekCertificateExtensions(m.root.VCEK)
		if err != nil {
			t.Fatal(err)
		}
		r := e.Report
		copy(r[0x1A0:0x1E0], m.root.ChipID[:])
		for _, off := range []int{0x38, 0x180, 0x1E0, 0x1F0} { // CURRENT, REPORTED, COMMITTED, LAUNCH TCB
			binary.LittleEndian.PutUint64(r[off:], uint64(exts.TCBVersion))
		}
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		rd := attest.ReportData(attest.KindSNP, spki)
		copy(r[0x50:0x90], rd[:])
		if mutate != nil {
			mutate(r)
		}
		if err := m.root.Sign(r); err != nil {
			t.Fatal(err)
		}
		ev, err := (&envelope.SnpEvidence{VCEK: m.root.VCEK.Raw, CRLs: envelope.CrlList{{URL: emulated.CRLURL(), CRL: crl}}, Report: r}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		der, err := vectors.CSRWithKey(k, pkix.Extension{Id: attest.OIDEvidenceSNP, Value: ev})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
}

// emulatedTDX is a TD quote from the emulated Intel hierarchy
// (evidence/emulated), verified now.
type emulatedTDX struct {
	root *emulated.TDXRoot
	now  time.Time
}

func newEmulatedTDX(t testing.TB) *emulatedTDX {
	root, err := emulated.NewTDXRoot()
	if err != nil {
		t.Fatal(err)
	}
	return &emulatedTDX{root: root, now: time.Now()}
}

func (m *emulatedTDX) opts() policy.Options {
	return policy.Options{TDXRoots: []*x509.Certificate{m.root.Root}}
}

// csr returns a CSR whose quote (for a TD described by td) binds its key
// (or, with swap, another key).
func (m *emulatedTDX) csr(td emulated.TDXOptions, swap bool) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		bound := &k.PublicKey
		if swap {
			other, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			bound = &other.PublicKey
		}
		spki, err := x509.MarshalPKIXPublicKey(bound)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := m.root.Evidence(attest.ReportData(attest.KindTDX, spki), td, m.now)
		if err != nil {
			t.Fatal(err)
		}
		der, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := vectors.CSRWithKey(k, pkix.Extension{Id: attest.OIDEvidenceTDX, Value: der})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestEmulatedTDXIssued: a TDX quote from an explicitly trusted emulated
// Intel hierarchy is certified as not hardware-backed, with its MRTD.
func TestEmulatedTDXIssued(t *testing.T) {
	p := newPKI(t)
	m := newEmulatedTDX(t)
	url := p.server(t, withTDX, m.now, m.opts())
	a := attested(t, p.issued(t, post(t, url, m.csr(emulated.TDXOptions{}, false)(t))))
	if a.Claims.Kind != attest.KindTDX || a.Claims.HardwareBacked || len(a.Claims.Measurement) != 48 || a.Claims.TCBStatus != "UpToDate" {
		t.Fatalf("claims %+v", a.Claims)
	}
}
