// Package tdx verifies Intel TDX evidence: this project's TdxEvidence
// envelope (OID 1.3.6.1.4.1.58270.1.4; a TDX quote v4 plus the Intel
// collateral an offline verifier needs, see attestation/envelope) and
// applies the `[tdx]` policy.
//
// It trusts only the Intel SGX Root CA (as embedded by attestation/sgx) and
// the verification clock in the request. go-tdx-guest's verify checks the
// PCK chain, the CRLs, the TCB Info and QE Identity signatures and expiry,
// the QE report, the quote signature and the TCB status (UpToDate); its
// validate checks minimum SVNs. Because it reports most failures as text,
// the same checks run first in typed stages (stages.go; CRLs through
// attestation/crl) that give each failure its stable code. The collateral
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
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/validate"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx"
	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
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
	CodeTCBStatus         = "tdx.tcb.status"         // the platform, TDX module or QE matches no UpToDate level of the collateral
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

// Verify implements attest.Verifier. Errors are *attest.Rejection. The
// stages of the quote's verification are described in stages.go.
func (v *Verifier) Verify(ctx context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil || req.CSR == nil {
		return nil, errors.New("tdx: no request")
	}
	ev, quote, err := decode(req)
	if err != nil {
		return nil, err
	}
	roots, emulated := v.rootsFor(quote)
	if err := verifyQuote(ev, quote, roots, req.Now); err != nil {
		return nil, err
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

// decode checks the request's framing and key type and parses the
// evidence and its quote (v4 only).
func decode(req *attest.VerifyRequest) (*envelope.TdxEvidence, *pb.QuoteV4, error) {
	if req.Extension.Critical {
		return nil, nil, attest.Reject(CodeExtensionCritical, "the TDX evidence extension must not be critical")
	}
	ev, err := envelope.DecodeTdxEvidence(req.Extension.Value)
	if err != nil {
		if errors.Is(err, envelope.ErrTooLarge) {
			return nil, nil, attest.RejectErr(CodeEvidenceTooLarge, err, "the TDX evidence is too large")
		}
		return nil, nil, attest.RejectErr(CodeEvidenceDecode, err, "the TDX evidence is malformed")
	}
	if pub, ok := req.CSR.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return nil, nil, attest.Reject(CodeCSRKey, "the CSR key must be ECDSA P-384 for TDX")
	}
	if len(ev.Quote) >= 2 {
		if ver := binary.LittleEndian.Uint16(ev.Quote); ver != 4 {
			return nil, nil, attest.Reject(CodeQuoteVersion, "quote version %d is not supported (TDX quote v4 only)", ver)
		}
	}
	parsed, err := tdxquote.Parse(ev.Quote)
	if err != nil {
		return nil, nil, attest.RejectErr(CodeQuoteFormat, err, "the TDX quote is malformed")
	}
	quote, ok := parsed.(*pb.QuoteV4)
	if !ok {
		return nil, nil, attest.Reject(CodeQuoteVersion, "only TDX quote v4 is supported")
	}
	if err := abi.CheckQuoteV4(quote); err != nil {
		return nil, nil, attest.RejectErr(CodeQuoteFormat, err, "the TDX quote is malformed")
	}
	return ev, quote, nil
}

// verifyQuote runs the stages of stages.go in order.
func verifyQuote(ev *envelope.TdxEvidence, quote *pb.QuoteV4, roots *x509.CertPool, now time.Time) error {
	c, err := parseCollateral(ev, quote)
	if err != nil {
		return err
	}
	if err := c.checkChains(roots, now); err != nil {
		return err
	}
	if err := c.checkSigned(now); err != nil {
		return err
	}
	if err := c.checkCRLs(ev.CRLs, now); err != nil {
		return err
	}
	if err := checkQuoteSignatures(quote, c.pck[0]); err != nil {
		return err
	}
	return c.matchCollateral(ev, quote, roots, now)
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
			var got []byte
			if i < len(body.GetRtmrs()) {
				got = body.GetRtmrs()[i]
			}
			return attest.Reject(CodePolicyRTMR, "RTMR%d %x is not in tdx.rtmr%d", i, got, i)
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
