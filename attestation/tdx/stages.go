package tdx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/crl"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/internal/signedjson"
)

// The verification runs in stages, each with its own rejection codes, so
// that a code never depends on the text of a library's error:
//
//  1. parse: the quote's PCK chain and the collateral (TCB Info, QE
//     Identity and their issuer chains), Intel's certificate profile
//     (ECDSA P-256 keys, ECDSA-SHA256 signatures, X.509 v3) checked before
//     any signature is: tdx.pck.chain, tdx.tcbinfo.invalid,
//     tdx.qeidentity.invalid;
//  2. chains: the PCK and TCB Signing certificates chain to the trusted
//     roots at the verification time: tdx.pck.chain, tdx.pck.expired,
//     tdx.tcbinfo.invalid, tdx.qeidentity.invalid;
//  3. collateral: TCB Info and QE Identity are what they say (id,
//     version), signed by the TCB Signing key and current:
//     tdx.tcbinfo.invalid/.expired, tdx.qeidentity.invalid/.expired;
//  4. revocation, with attestation/crl: a CRL for every link, signed by
//     its issuer, current, revoking nothing on the chains:
//     tdx.crl.missing, .invalid, .revoked, .expired;
//  5. quote: signed by its attestation key, which the QE report (signed by
//     the PCK) commits to: tdx.quote.signature, tdx.qe.report;
//  6. go-tdx-guest's verify, which checks all of the above again and alone
//     matches the quote against the collateral (FMSPC and PCE ID, TCB
//     levels, TDX module identity, QE identity): tdx.tcb.status.
//
// go-tdx-guest stays the final word; stages 1–5 exist because it reports
// most failures as formatted text, which is no basis for a stable code.

// collateral is the parsed certificates and collateral of one evidence.
type collateral struct {
	pck          [3]*x509.Certificate // PCK, intermediate CA, root (as carried in the quote)
	tcbChain     [2]*x509.Certificate // TCB Info issuer: TCB Signing, root
	qeChain      [2]*x509.Certificate // QE Identity issuer: TCB Signing, root
	tcbInfo      pcs.TdxTcbInfo
	tcbInfoRaw   []byte // the signed "tcbInfo" value
	qeIdentity   pcs.QeIdentity
	qeIdentRaw   []byte // the signed "enclaveIdentity" value
	tcbSignature []byte // r‖s over tcbInfoRaw
	qeSignature  []byte // r‖s over qeIdentRaw
}

// Intel's collateral formats that go-tdx-guest v0.3.1 verifies.
const (
	tcbInfoID         = "TDX"
	tcbInfoVersion    = 3
	qeIdentityID      = "TD_QE"
	qeIdentityVersion = 2
)

// parseCollateral is stage 1.
func parseCollateral(ev *envelope.TdxEvidence, q *pb.QuoteV4) (*collateral, error) {
	c := &collateral{}
	chainPEM := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	pck, err := pemCertificates(chainPEM)
	if err != nil {
		return nil, attest.RejectErr(CodePCKChain, err, "a PCK chain certificate in the quote does not parse")
	}
	if len(pck) != 3 {
		return nil, attest.Reject(CodePCKChain, "the quote's PCK chain has %d certificates, want 3 (PCK, intermediate, root)", len(pck))
	}
	if err := intelProfile(CodePCKChain, "PCK chain", pck...); err != nil {
		return nil, err
	}
	copy(c.pck[:], pck)
	if c.tcbChain, err = issuerChain(CodeTCBInfo, "TCB Info issuer", ev.TCB.Certs); err != nil {
		return nil, err
	}
	if c.qeChain, err = issuerChain(CodeQEIdentity, "QE Identity issuer", ev.QEIdentity.Certs); err != nil {
		return nil, err
	}
	if c.tcbInfoRaw, c.tcbSignature, err = signedJSON(ev.TCB.Report, "tcbInfo", &c.tcbInfo.TcbInfo); err != nil {
		return nil, attest.RejectErr(CodeTCBInfo, err, "the TCB Info is malformed")
	}
	if c.qeIdentRaw, c.qeSignature, err = signedJSON(ev.QEIdentity.Report, "enclaveIdentity", &c.qeIdentity.EnclaveIdentity); err != nil {
		return nil, attest.RejectErr(CodeQEIdentity, err, "the QE Identity is malformed")
	}
	return c, nil
}

func pemCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func issuerChain(code, what string, ders [][]byte) ([2]*x509.Certificate, error) {
	var out [2]*x509.Certificate
	if len(ders) != 2 {
		return out, attest.Reject(code, "the %s chain must be [TCB Signing, Root], got %d certificates", what, len(ders))
	}
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return out, attest.RejectErr(code, err, "%s certificate %d does not parse", what, i)
		}
		out[i] = c
	}
	return out, intelProfile(code, what, out[:]...)
}

// intelProfile refuses certificates that are not shaped like Intel's
// (X.509 v3, ECDSA P-256 key, ECDSA with SHA-256) before a signature is
// checked with them: chain building checks a certificate with its (not yet
// trusted) issuer's key, and a verification with an RSA key costs what its
// sender chooses.
func intelProfile(code, what string, certs ...*x509.Certificate) error {
	for i, c := range certs {
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			return attest.Reject(code, "%s certificate %d has a %v key, not ECDSA P-256 as in Intel's chains", what, i, c.PublicKeyAlgorithm)
		}
		if c.Version != 3 || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			return attest.Reject(code, "%s certificate %d is X.509 v%d signed with %v, not v3 with ECDSA-SHA256 as in Intel's chains", what, i, c.Version, c.SignatureAlgorithm)
		}
	}
	return nil
}

// signedJSON splits a PCS document {"<field>": {...}, "signature": hex}
// (attestation/internal/signedjson, which refuses any other member) and
// decodes the signed body, and only it, into v: what the checks below read
// is exactly what Intel signed.
func signedJSON(doc []byte, field string, v any) (raw, sig []byte, err error) {
	body, rs, err := signedjson.Split(doc, field, maxCollateralJSON, field)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", field, err)
	}
	return body, rs[:], nil
}

// maxCollateralJSON bounds a TCB Info or QE Identity document (Intel's are
// a few KiB; the evidence envelope's own limits are larger).
const maxCollateralJSON = 256 << 10

// signedDoc is the PCS document go-tdx-guest reads (through getter) for
// the collateral c holds: the signed body and its signature and nothing
// else, whatever else the evidence carried around them.
func signedDoc(field string, raw, sig []byte) []byte {
	doc := make([]byte, 0, len(raw)+len(field)+150)
	doc = append(doc, `{"`...)
	doc = append(doc, field...)
	doc = append(doc, `":`...)
	doc = append(doc, raw...)
	doc = append(doc, `,"signature":"`...)
	doc = hex.AppendEncode(doc, sig)
	return append(doc, `"}`...)
}

// checkChains is stage 2. Each chain the evidence carries must reach a
// trusted root, and end in that root itself: stage 4 checks the CRL of
// each link with the certificate above it as the evidence carries it, so
// a carried root of Intel's name and another key would sign the root CRL
// that says whether the intermediate is revoked.
func (c *collateral) checkChains(roots *x509.CertPool, now time.Time) error {
	if err := chainsTo(roots, now, c.pck[2], c.pck[0], c.pck[1]); err != nil {
		code := CodePCKChain
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			code = CodePCKExpired
		}
		return attest.RejectErr(code, err, "the PCK certificate does not chain to a trusted Intel root at %s", now.UTC().Format(time.RFC3339))
	}
	if err := chainsTo(roots, now, c.tcbChain[1], c.tcbChain[0]); err != nil {
		return attest.RejectErr(CodeTCBInfo, err, "the TCB Info signing certificate does not chain to a trusted Intel root")
	}
	if err := chainsTo(roots, now, c.qeChain[1], c.qeChain[0]); err != nil {
		return attest.RejectErr(CodeQEIdentity, err, "the QE Identity signing certificate does not chain to a trusted Intel root")
	}
	return nil
}

// errCarriedRoot: a chain verifies to a trusted root, but the root the
// evidence carries with it is another certificate.
var errCarriedRoot = errors.New("the root certificate the evidence carries is not the trusted root its chain verifies to")

// chainsTo verifies leaf through intermediates to roots, and that a
// verified chain ends in carriedRoot.
func chainsTo(roots *x509.CertPool, now time.Time, carriedRoot, leaf *x509.Certificate, intermediates ...*x509.Certificate) error {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if ch[len(ch)-1].Equal(carriedRoot) {
			return nil
		}
	}
	return errCarriedRoot
}

// checkCRLs is stage 4: the PCK chain and both signing chains against the
// evidence's CRLs, a CRL required for every link.
func (c *collateral) checkCRLs(crls envelope.CrlList, now time.Time) error {
	entries := make([]crl.Entry, len(crls))
	for i, e := range crls {
		entries[i] = crl.Entry{URL: e.URL, DER: e.CRL}
	}
	for _, chain := range [][]*x509.Certificate{c.pck[:], c.tcbChain[:], c.qeChain[:]} {
		res, err := crl.Check(chain, entries, crl.Options{RequireEvery: true})
		if err == nil {
			err = res.CheckTime(now)
		}
		switch {
		case err == nil:
		case errors.Is(err, crl.ErrMissing):
			return attest.RejectErr(CodeCRLMissing, err, "the evidence lacks an Intel CRL")
		case errors.Is(err, crl.ErrRevoked):
			return attest.RejectErr(CodeCRLRevoked, err, "a certificate of the TDX evidence is revoked")
		case errors.Is(err, crl.ErrExpired), errors.Is(err, crl.ErrNotYetValid):
			return attest.RejectErr(CodeCRLExpired, err, "an Intel CRL in the evidence is not current; refresh the host's collateral (enarx platform tdx fetch)")
		default:
			return attest.RejectErr(CodeCRLInvalid, err, "an Intel CRL in the evidence does not parse or verify")
		}
	}
	return nil
}

// checkSigned is stage 3.
func (c *collateral) checkSigned(now time.Time) error {
	info, id := &c.tcbInfo.TcbInfo, &c.qeIdentity.EnclaveIdentity
	switch {
	case info.ID != tcbInfoID || info.Version != tcbInfoVersion || len(info.TcbLevels) == 0:
		return attest.Reject(CodeTCBInfo, "the TCB Info is %q version %d with %d levels, want %q version %d with levels", info.ID, info.Version, len(info.TcbLevels), tcbInfoID, tcbInfoVersion)
	case !verifyRS(c.tcbChain[0], c.tcbInfoRaw, c.tcbSignature):
		return attest.Reject(CodeTCBInfo, "the TCB Info signature does not verify with the TCB Signing key")
	case !now.Before(info.NextUpdate):
		return attest.Reject(CodeTCBInfoExpired, "the TCB Info expired at %s (verification time %s); refresh the host's collateral", info.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case id.ID != qeIdentityID || id.Version != qeIdentityVersion || len(id.TcbLevels) == 0:
		return attest.Reject(CodeQEIdentity, "the QE Identity is %q version %d with %d levels, want %q version %d with levels", id.ID, id.Version, len(id.TcbLevels), qeIdentityID, qeIdentityVersion)
	case !verifyRS(c.qeChain[0], c.qeIdentRaw, c.qeSignature):
		return attest.Reject(CodeQEIdentity, "the QE Identity signature does not verify with the TCB Signing key")
	case !now.Before(id.NextUpdate):
		return attest.Reject(CodeQEIdentityExpired, "the QE Identity expired at %s (verification time %s); refresh the host's collateral", id.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkQuoteSignatures is stage 5: the quote's signature by its
// attestation key, the QE report's by the PCK, and the QE report data's
// commitment to the attestation key.
func checkQuoteSignatures(q *pb.QuoteV4, pck *x509.Certificate) error {
	sd := q.GetSignedData()
	header, err := abi.HeaderToAbiBytes(q.GetHeader())
	if err != nil {
		return attest.RejectErr(CodeQuoteFormat, err, "the quote header does not encode")
	}
	body, err := abi.TdQuoteBodyToAbiBytes(q.GetTdQuoteBody())
	if err != nil {
		return attest.RejectErr(CodeQuoteFormat, err, "the TD quote body does not encode")
	}
	attKey, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, sd.GetEcdsaAttestationKey()...))
	if err != nil || !verifyRSKey(attKey, append(header, body...), sd.GetSignature()) {
		return attest.Reject(CodeQuoteSignature, "the quote signature does not verify with its attestation key")
	}
	qe := sd.GetCertificationData().GetQeReportCertificationData()
	report, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		return attest.RejectErr(CodeQEReport, err, "the QE report does not encode")
	}
	if !verifyRS(pck, report, qe.GetQeReportSignature()) {
		return attest.Reject(CodeQEReport, "the QE report signature does not verify with the PCK")
	}
	h := sha256.Sum256(append(bytes.Clone(sd.GetEcdsaAttestationKey()), qe.GetQeAuthData().GetData()...))
	if want := append(h[:], make([]byte, 32)...); !bytes.Equal(qe.GetQeReport().GetReportData(), want) {
		return attest.Reject(CodeQEReport, "the QE report data does not commit to the quote's attestation key")
	}
	return nil
}

// verifyRS verifies an ECDSA P-256 signature r‖s over SHA-256(msg) with a
// certificate's key (P-256, as intelProfile checked).
func verifyRS(c *x509.Certificate, msg, sig []byte) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && verifyRSKey(k, msg, sig)
}

func verifyRSKey(k *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	d := sha256.Sum256(msg)
	return ecdsa.Verify(k, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// matchCollateral is stage 6: go-tdx-guest's verification, offline, of
// everything above and of the quote against the collateral. Its sentinel
// errors keep their codes; any other failure, once stages 1–5 passed, is
// the matching's.
func (c *collateral) matchCollateral(ev *envelope.TdxEvidence, q *pb.QuoteV4, roots *x509.CertPool, now time.Time) error {
	err := verify.TdxQuote(q, &verify.Options{
		CheckRevocations: true,
		GetCollateral:    true,
		Getter:           newGetter(ev, c),
		Now:              now,
		TrustedRoots:     roots,
	})
	if err == nil {
		return nil
	}
	for _, s := range []struct {
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
	} {
		if errors.Is(err, s.target) {
			return attest.RejectErr(s.code, err, "go-tdx-guest rejects the quote")
		}
	}
	return attest.RejectErr(CodeTCBStatus, err, "the platform, TDX module or Quoting Enclave does not match an UpToDate level of the TCB Info or QE Identity")
}
