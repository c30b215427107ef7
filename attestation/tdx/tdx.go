// Package tdx verifies Intel TDX evidence: this project's TdxEvidence
// envelope (OID 1.3.6.1.4.1.58270.1.4; a TDX quote v4 plus the Intel
// collateral an offline verifier needs, see attestation/envelope) and
// applies the `[tdx]` policy.
//
// It trusts only the Intel SGX Root CA (as embedded by attestation/sgx) and the verification clock in the request.
// go-tdx-guest's verify checks the PCK chain, the CRLs, the TCB Info and QE
// Identity signatures and expiry, the QE report, the quote signature and the
// TCB status (UpToDate); its validate checks minimum SVNs. The collateral
// comes from the evidence through an offline getter: no network on the
// request path. This package adds the key binding, debug refusal and the
// measurement allow-lists.
//
// Quote v5 (TDX 1.5) needs go-tdx-guest newer than v0.3.1 and is rejected
// with tdx.quote.version for now.
package tdx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/validate"
	"github.com/google/go-tdx-guest/verify"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx"
)

// Rejection codes (stable).
const (
	CodeExtensionCritical = "tdx.extension.critical" // the evidence extension is critical
	CodeEvidenceDecode    = "tdx.evidence.decode"    // the TdxEvidence DER is malformed or truncated
	CodeEvidenceTooLarge  = "tdx.evidence.too-large" // the evidence exceeds the size limits
	CodeCSRKey            = "tdx.csr.key"            // the CSR key is not ECDSA P-384
	CodeQuoteFormat       = "tdx.quote.format"       // the quote does not parse
	CodeQuoteVersion      = "tdx.quote.version"      // not a TDX quote v4
	CodeQuoteSignature    = "tdx.quote.signature"    // the quote signature does not verify
	CodeQEReport          = "tdx.qe.report"          // QE report signature/data or QE identity mismatch
	CodePCKChain          = "tdx.pck.chain"          // the PCK chain does not verify to the Intel root
	CodePCKExpired        = "tdx.pck.expired"        // a PCK chain certificate expired
	CodeCRLMissing        = "tdx.crl.missing"        // a required CRL is not in the evidence
	CodeCRLInvalid        = "tdx.crl.invalid"        // a CRL does not parse or verify
	CodeCRLRevoked        = "tdx.crl.revoked"        // a certificate is revoked
	CodeCRLExpired        = "tdx.crl.expired"        // a CRL expired at the verification time
	CodeTCBInfo           = "tdx.tcbinfo.invalid"    // TCB Info missing, malformed or badly signed
	CodeTCBInfoExpired    = "tdx.tcbinfo.expired"    // TCB Info expired at the verification time
	CodeQEIdentity        = "tdx.qeidentity.invalid" // QE Identity missing, malformed or badly signed
	CodeQEIdentityExpired = "tdx.qeidentity.expired" // QE Identity expired at the verification time
	CodeTCBStatus         = "tdx.tcb.status"         // the platform/module/QE TCB status is not UpToDate
	CodeVerify            = "tdx.quote.verify"       // any other go-tdx-guest verification failure
	CodeValidate          = "tdx.quote.validate"     // go-tdx-guest validate rejects the quote (SVN minimums, fixed bits)
	CodeBinding           = "tdx.binding"            // REPORTDATA does not bind the CSR key
	CodePolicyDebug       = "tdx.policy.debug"       // the TD is debuggable (TDATTRIBUTES.DEBUG)
	CodePolicyAttributes  = "tdx.policy.attributes"  // TDATTRIBUTES differ from td_attributes
	CodePolicyMRTD        = "tdx.policy.mrtd"        // MRTD not allowed
	CodePolicyRTMR        = "tdx.policy.rtmr"        // an RTMR not allowed
	CodePolicyMRSEAM      = "tdx.policy.mrseam"      // MRSEAM not allowed
	CodePolicyMRConfigID  = "tdx.policy.mrconfigid"  // MRCONFIGID not allowed
	CodePolicyMROwner     = "tdx.policy.mrowner"     // MROWNER not allowed
)

// Policy is the validated `[tdx]` policy. Empty allow-lists allow anything.
type Policy struct {
	MRTD, MRSEAM, MRConfigID, MROwner [][]byte // 48-byte allow-lists
	RTMR                              [4][][]byte
	// TDAttributes, when set, must equal TDATTRIBUTES exactly (8 bytes).
	TDAttributes []byte
	// AllowDebug accepts debuggable TDs outside the Steward's debug mode.
	AllowDebug bool
	// MinimumTEETCBSVN is compared component-wise (16 bytes); nil: none.
	MinimumTEETCBSVN []byte
	// MinimumQESVN and MinimumPCESVN are compared with the quote header.
	MinimumQESVN, MinimumPCESVN uint16
}

// Options configure a Verifier.
type Options struct {
	// Policy is the `[tdx]` policy; nil applies only go-tdx-guest's checks,
	// the binding and the debug refusal.
	Policy *Policy
	// Roots replaces the Intel SGX Root CA (tests and emulators only);
	// claims verified under such roots are recorded as not hardware-backed.
	Roots []*x509.Certificate
	// EmulatedRoots are trusted in addition to Intel's root, each only for
	// quotes whose embedded PCK chain ends in exactly that certificate
	// (enarx's tdx-emulated backend; the policy must name them). Claims
	// verified under them are recorded as not hardware-backed.
	EmulatedRoots []*x509.Certificate
}

// Verifier verifies TDX evidence. It is safe for concurrent use.
type Verifier struct {
	policy   Policy
	roots    *x509.CertPool
	emulated bool
	// extra are the policy-named emulated roots, by raw bytes.
	extra map[string]*x509.CertPool
}

var _ attest.Verifier = (*Verifier)(nil)

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	v := &Verifier{roots: intelRoots}
	if opts.Roots != nil {
		v.roots, v.emulated = x509.NewCertPool(), true
		for _, r := range opts.Roots {
			v.roots.AddCert(r)
		}
	}
	for _, r := range opts.EmulatedRoots {
		if v.extra == nil {
			v.extra = map[string]*x509.CertPool{}
		}
		pool := x509.NewCertPool()
		pool.AddCert(r)
		v.extra[string(r.Raw)] = pool
	}
	if opts.Policy != nil {
		v.policy = *opts.Policy
	}
	if n := len(v.policy.MinimumTEETCBSVN); n != 0 && n != 16 {
		return nil, fmt.Errorf("tdx: minimum TEE TCB SVN must be 16 bytes, got %d", n)
	}
	if n := len(v.policy.TDAttributes); n != 0 && n != 8 {
		return nil, fmt.Errorf("tdx: TD attributes must be 8 bytes, got %d", n)
	}
	return v, nil
}

// OID implements attest.Verifier.
func (v *Verifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceTDX }

// intelRoots holds the Intel SGX Root CA, which also anchors TDX.
var intelRoots = func() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(sgx.IntelRootCA())
	return p
}()

// tdAttributesDebug is TDATTRIBUTES bit 0 (TUD.DEBUG).
const tdAttributesDebug = 1

// Verify implements attest.Verifier. Errors are *attest.Rejection.
func (v *Verifier) Verify(ctx context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil || req.CSR == nil {
		return nil, errors.New("tdx: no request")
	}
	if req.Extension.Critical {
		return nil, attest.Reject(CodeExtensionCritical, "the TDX evidence extension must not be critical")
	}
	ev, err := envelope.DecodeTdxEvidence(req.Extension.Value)
	if err != nil {
		if errors.Is(err, envelope.ErrTooLarge) {
			return nil, attest.RejectErr(CodeEvidenceTooLarge, err, "the TDX evidence is too large")
		}
		return nil, attest.RejectErr(CodeEvidenceDecode, err, "the TDX evidence is malformed")
	}
	if pub, ok := req.CSR.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return nil, attest.Reject(CodeCSRKey, "the CSR key must be ECDSA P-384 for TDX")
	}
	if len(ev.Quote) >= 2 {
		if ver := binary.LittleEndian.Uint16(ev.Quote); ver != 4 {
			return nil, attest.Reject(CodeQuoteVersion, "quote version %d is not supported (TDX quote v4 only)", ver)
		}
	}
	parsed, err := abi.QuoteToProto(ev.Quote)
	if err != nil {
		return nil, attest.RejectErr(CodeQuoteFormat, err, "the TDX quote is malformed")
	}
	quote, ok := parsed.(*pb.QuoteV4)
	if !ok {
		return nil, attest.Reject(CodeQuoteVersion, "only TDX quote v4 is supported")
	}
	getter, err := newGetter(ev, quote)
	if err != nil {
		return nil, err
	}
	roots, emulated := v.rootsFor(quote)
	if err := verify.TdxQuote(quote, &verify.Options{
		CheckRevocations: true,
		GetCollateral:    true,
		Getter:           getter,
		Now:              req.Now,
		TrustedRoots:     roots,
	}); err != nil {
		return nil, verifyRejection(err)
	}
	p := &v.policy
	if err := validate.TdxQuote(quote, &validate.Options{
		HeaderOptions:      validate.HeaderOptions{MinimumQeSvn: p.MinimumQESVN, MinimumPceSvn: p.MinimumPCESVN},
		TdQuoteBodyOptions: validate.TdQuoteBodyOptions{MinimumTeeTcbSvn: p.MinimumTEETCBSVN},
	}); err != nil {
		return nil, attest.RejectErr(CodeValidate, err, "the TDX quote does not meet the policy minimums")
	}
	body := quote.GetTdQuoteBody()
	if err := v.checkBody(body, req.CSR.RawSubjectPublicKeyInfo, req.Debug); err != nil {
		return nil, err
	}
	attrs := body.GetTdAttributes()
	debug := len(attrs) > 0 && attrs[0]&tdAttributesDebug != 0
	return &attest.Claims{
		Kind:           attest.KindTDX,
		HardwareBacked: !emulated,
		// As attest.Claims says: a debug-mode Steward skipped the key
		// binding in checkBody, so the record must not read as production.
		Debug:       debug || req.Debug,
		Measurement: bytes.Clone(body.GetMrTd()),
		Signer:      bytes.Clone(body.GetMrSeam()),
		ReportData:  bytes.Clone(body.GetReportData()),
		TCBStatus:   "UpToDate",
	}, nil
}

// rootsFor picks the trust anchors for quote: a policy-named emulated root
// when the quote's embedded chain ends in exactly that certificate,
// otherwise the verifier's roots (Intel's). The embedded root is only a
// selector; go-tdx-guest still verifies the whole chain against the pool.
func (v *Verifier) rootsFor(quote *pb.QuoteV4) (*x509.CertPool, bool) {
	if len(v.extra) == 0 {
		return v.roots, v.emulated
	}
	rest := quote.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var last []byte
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		last = blk.Bytes
	}
	if pool, ok := v.extra[string(last)]; ok {
		return pool, true
	}
	return v.roots, v.emulated
}

// checkBody applies the key binding, the debug refusal and the policy to a
// verified TD quote body.
func (v *Verifier) checkBody(body *pb.TDQuoteBody, spki []byte, stewardDebug bool) error {
	p := &v.policy
	if !stewardDebug {
		want := sha512.Sum384(spki)
		if !bytes.Equal(body.GetReportData()[:attest.ReportDataLen(attest.KindTDX)], want[:]) {
			return attest.Reject(CodeBinding, "REPORTDATA does not start with SHA-384 of the CSR public key; the quote was not made for this key")
		}
	}
	attrs := body.GetTdAttributes()
	debug := len(attrs) > 0 && attrs[0]&tdAttributesDebug != 0
	if debug && !stewardDebug && !p.AllowDebug {
		return attest.Reject(CodePolicyDebug, "the TD is debuggable (TDATTRIBUTES.DEBUG); the host can read its memory")
	}
	if p.TDAttributes != nil && !bytes.Equal(attrs, p.TDAttributes) {
		return attest.Reject(CodePolicyAttributes, "TDATTRIBUTES %x are not tdx.td_attributes %x", attrs, p.TDAttributes)
	}
	for _, c := range []struct {
		code, name string
		allowed    [][]byte
		got        []byte
	}{
		{CodePolicyMRTD, "MRTD (tdx.mrtd)", p.MRTD, body.GetMrTd()},
		{CodePolicyMRSEAM, "MRSEAM (tdx.mrseam)", p.MRSEAM, body.GetMrSeam()},
		{CodePolicyMRConfigID, "MRCONFIGID (tdx.mrconfigid)", p.MRConfigID, body.GetMrConfigId()},
		{CodePolicyMROwner, "MROWNER (tdx.mrowner)", p.MROwner, body.GetMrOwner()},
	} {
		if len(c.allowed) > 0 && !contains(c.allowed, c.got) {
			return attest.Reject(c.code, "%s %s is not allowed", c.name, hex.EncodeToString(c.got))
		}
	}
	for i, allowed := range p.RTMR {
		if len(allowed) > 0 && (i >= len(body.GetRtmrs()) || !contains(allowed, body.GetRtmrs()[i])) {
			return attest.Reject(CodePolicyRTMR, "RTMR%d is not in tdx.rtmr%d", i, i)
		}
	}
	return nil
}

func contains(list [][]byte, v []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, v) {
			return true
		}
	}
	return false
}

// verifyRejection maps go-tdx-guest's verification errors to codes. Most of
// its errors are formatted with %v, so sentinel matching is complemented by
// message matching; anything unrecognised gets CodeVerify.
func verifyRejection(err error) error {
	sentinels := []struct {
		target error
		code   string
	}{
		{verify.ErrHashVerificationFail, CodeQuoteSignature},
		{verify.ErrSHA56VerificationFail, CodeQEReport},
		{verify.ErrTcbInfoExpired, CodeTCBInfoExpired},
		{verify.ErrQeIdentityExpired, CodeQEIdentityExpired},
		{verify.ErrRootCaCrlExpired, CodeCRLExpired},
		{verify.ErrPCKCrlExpired, CodeCRLExpired},
		{verify.ErrRootCaCertExpired, CodePCKExpired},
		{verify.ErrIntermediateCaCertExpired, CodePCKExpired},
		{verify.ErrPckLeafCertExpired, CodePCKExpired},
		{verify.ErrTcbStatus, CodeTCBStatus},
	}
	for _, s := range sentinels {
		if errors.Is(err, s.target) {
			return attest.RejectErr(s.code, err, "TDX verification failed")
		}
	}
	msg := err.Error()
	for _, m := range []struct{ substr, code string }{
		{verify.ErrTcbInfoExpired.Error(), CodeTCBInfoExpired},
		{verify.ErrQeIdentityExpired.Error(), CodeQEIdentityExpired},
		{verify.ErrRootCaCrlExpired.Error(), CodeCRLExpired},
		{verify.ErrPCKCrlExpired.Error(), CodeCRLExpired},
		{"no matching TCB level", CodeTCBStatus},
		{"offline:", CodeCRLMissing},
		{"was revoked", CodeCRLRevoked},
		{"TCB Status is not", CodeTCBStatus},
		{"CRL", CodeCRLInvalid},
		{"tcbInfo", CodeTCBInfo},
		{"QeIdentity", CodeQEIdentity},
		{"QE report", CodeQEReport},
		{"QE Report", CodeQEReport},
		{"PCK", CodePCKChain},
		{"certificate", CodePCKChain},
	} {
		if strings.Contains(msg, m.substr) {
			return attest.RejectErr(m.code, err, "TDX verification failed")
		}
	}
	return attest.RejectErr(CodeVerify, err, "TDX verification failed")
}

// getter serves the evidence's collateral to go-tdx-guest as if it were
// Intel PCS, offline. It implements go-tdx-guest's trust.HTTPSGetter.
type getter struct {
	ev                 *envelope.TdxEvidence
	tcbChain, qeChain  string // URL-escaped PEM issuer chains, as PCS sends them
	pckCRLChain        string
	intermediate, root *x509.Certificate
}

func pemChain(ders ...[]byte) string {
	var b strings.Builder
	for _, d := range ders {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	return url.QueryEscape(b.String())
}

func newGetter(ev *envelope.TdxEvidence, q *pb.QuoteV4) (*getter, error) {
	if len(ev.TCB.Certs) != 2 {
		return nil, attest.Reject(CodeTCBInfo, "the TCB Info issuer chain must be [TCB Signing, Root], got %d certificates", len(ev.TCB.Certs))
	}
	if len(ev.QEIdentity.Certs) != 2 {
		return nil, attest.Reject(CodeQEIdentity, "the QE Identity issuer chain must be [TCB Signing, Root], got %d certificates", len(ev.QEIdentity.Certs))
	}
	if err := p256Only(CodeTCBInfo, "TCB Info issuer", ev.TCB.Certs...); err != nil {
		return nil, err
	}
	if err := p256Only(CodeQEIdentity, "QE Identity issuer", ev.QEIdentity.Certs...); err != nil {
		return nil, err
	}
	g := &getter{ev: ev, tcbChain: pemChain(ev.TCB.Certs...), qeChain: pemChain(ev.QEIdentity.Certs...)}
	// The PCK CRL's issuer chain is the quote's [intermediate, root].
	rest := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, attest.RejectErr(CodePCKChain, err, "a PCK chain certificate in the quote does not parse")
		}
		certs = append(certs, c)
	}
	if len(certs) != 3 {
		return nil, attest.Reject(CodePCKChain, "the quote's PCK chain has %d certificates, want 3 (PCK, intermediate, root)", len(certs))
	}
	if err := p256Only(CodePCKChain, "PCK chain", certs[0].Raw, certs[1].Raw, certs[2].Raw); err != nil {
		return nil, err
	}
	g.intermediate, g.root = certs[1], certs[2]
	g.pckCRLChain = pemChain(certs[1].Raw, certs[2].Raw)
	return g, nil
}

// p256Only refuses certificates whose key is not ECDSA P-256, as in all of
// Intel's chains, before go-tdx-guest checks a signature with them: chain
// building checks a certificate with its (not yet trusted) issuer's key,
// and a verification with an RSA key costs what its sender chooses.
func p256Only(code, what string, ders ...[]byte) error {
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return attest.RejectErr(code, err, "%s certificate %d does not parse", what, i)
		}
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			return attest.Reject(code, "%s certificate %d has a %v key, not ECDSA P-256 as in Intel's chains", what, i, c.PublicKeyAlgorithm)
		}
	}
	return nil
}

// crl finds a CRL by URL, else by issuer.
func (g *getter) crl(u string, issuer *x509.Certificate) ([]byte, error) {
	if b, ok := g.ev.CRLs.Lookup(u); ok {
		return b, nil
	}
	for _, c := range g.ev.CRLs {
		if l, err := x509.ParseRevocationList(c.CRL); err == nil && bytes.Equal(l.RawIssuer, issuer.RawSubject) {
			return c.CRL, nil
		}
	}
	return nil, fmt.Errorf("offline: no CRL for %s in the evidence", u)
}

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (g *getter) Get(u string) (map[string][]string, []byte, error) {
	switch {
	case strings.HasPrefix(u, pcs.TcbInfoURL("")):
		return map[string][]string{"Tcb-Info-Issuer-Chain": {g.tcbChain}}, g.ev.TCB.Report, nil
	case u == pcs.QeIdentityURL():
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {g.qeChain}}, g.ev.QEIdentity.Report, nil
	case strings.Contains(u, "/pckcrl?"):
		b, err := g.crl(u, g.intermediate)
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": {g.pckCRLChain}}, b, err
	default: // the root CA CRL, named by the collateral root's CRL DP
		b, err := g.crl(u, g.root)
		return nil, b, err
	}
}
