package sgx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/crl"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/internal/cache"
	"github.com/enarx-go/enarx/attestation/sgx/qeidentity"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
	"github.com/enarx-go/enarx/attestation/sgx/tcbinfo"
)

// Minimum QE and PCE security versions, as upstream enforces them.
const (
	MinQESVN  = 7
	MinPCESVN = 12
)

// DefaultCacheSize bounds each of the verifier's caches.
const DefaultCacheSize = 1024

// Options configure a Verifier.
type Options struct {
	// Policy is the [sgx] table; nil means the policy file has none, which
	// accepts any non-debug enclave on an UpToDate platform (upstream).
	Policy *Policy
	// CacheSize bounds each cache (PCK chains, TCB Info, CRL results, QE
	// reports); 0 means DefaultCacheSize.
	CacheSize int
}

// Verifier verifies SGX evidence; it is safe for concurrent use.
type Verifier struct {
	policy    *compiled
	policyErr error
	root      *x509.Certificate
	roots     *x509.CertPool

	pckChains *cache.Cache[*pckChain]
	tcbs      *cache.Cache[*verifiedTCB]
	crls      *cache.Cache[*crl.Result]
	qes       *cache.Cache[*ecdsa.PublicKey]
	qeids     *cache.Cache[*verifiedQEID]
}

// New returns a Verifier, or an error naming the bad policy key.
func New(opts Options) (*Verifier, error) {
	v := newVerifier(opts)
	if v.policyErr != nil {
		return nil, v.policyErr
	}
	return v, nil
}

// NewVerifier returns the SGX attest.Verifier. An invalid policy (see
// Policy.Validate, which callers should run first) yields a verifier that
// rejects all evidence with code sgx.policy.invalid.
func NewVerifier(opts Options) attest.Verifier { return newVerifier(opts) }

func newVerifier(opts Options) *Verifier {
	n := opts.CacheSize
	if n <= 0 {
		n = DefaultCacheSize
	}
	root := IntelRootCA()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	v := &Verifier{
		root:      root,
		roots:     roots,
		pckChains: cache.New[*pckChain](n),
		tcbs:      cache.New[*verifiedTCB](n),
		crls:      cache.New[*crl.Result](n),
		qes:       cache.New[*ecdsa.PublicKey](n),
		qeids:     cache.New[*verifiedQEID](n),
	}
	v.policy, v.policyErr = opts.Policy.compile()
	return v
}

// OID is the SGX evidence extension OID.
func (v *Verifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceSGX }

func reject(code, format string, args ...any) error { return attest.Reject(code, format, args...) }

func rejectErr(code string, err error, format string, args ...any) error {
	return attest.RejectErr(code, err, format, args...)
}

const timeFmt = time.RFC3339

// Verify checks one SGX evidence extension and the policy at req.Now (the
// wall clock if zero). Failures are *attest.Rejection values (see Codes);
// only a cancelled ctx yields a plain error. The steps are numbered as in
// upstream Steward's order (steward.md §4.2).
func (v *Verifier) Verify(ctx context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	if err := v.checkRequest(ctx, req); err != nil {
		return nil, err
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	// 1. The envelope.
	ev, qeID, err := decodeEvidence(req.Extension.Value)
	if err != nil {
		if errors.Is(err, envelope.ErrTooLarge) {
			return nil, rejectErr("sgx.evidence.size", err, "SGX evidence is too large")
		}
		return nil, rejectErr("sgx.evidence.malformed", err, "SGX evidence is not a DER SgxEvidence")
	}
	tcb, q, err := v.tcbAndQuote(ev, now) // 2–4
	if err != nil {
		return nil, err
	}
	entries := make([]crl.Entry, len(ev.CRLs))
	for i, e := range ev.CRLs {
		entries[i] = crl.Entry{URL: e.URL, DER: e.CRL}
	}
	pck, err := v.checkPCK(q, entries, now) // 5
	if err != nil {
		return nil, err
	}
	qeLevel, err := v.checkQE(q, pck, qeID, entries, now) // 6, 7
	if err != nil {
		return nil, err
	}
	// 8. TCB chain CRLs (the TCB chain itself was verified in step 2).
	if err := v.checkCRLs(tcb.chain, entries, now); err != nil {
		return nil, err
	}
	level, err := matchTCB(&tcb.signed.Info, pck) // 9, 10
	if err != nil {
		return nil, err
	}
	if err := checkBinding(req, q); err != nil { // 11, 12
		return nil, err
	}
	return v.decide(req, q, level, qeLevel) // 13
}

// checkRequest checks what Verify gets before the evidence is decoded.
func (v *Verifier) checkRequest(ctx context.Context, req *attest.VerifyRequest) error {
	if v.policyErr != nil {
		return rejectErr("sgx.policy.invalid", v.policyErr, "the Steward's [sgx] policy is invalid; fix the policy file")
	}
	if req == nil || req.CSR == nil {
		return reject("sgx.request", "no CSR to verify")
	}
	if !req.Extension.Id.Equal(attest.OIDEvidenceSGX) {
		return reject("sgx.evidence.oid", "extension %v is not SGX evidence (%v)", req.Extension.Id, attest.OIDEvidenceSGX)
	}
	if req.Extension.Critical {
		return reject("sgx.evidence.critical", "the SGX evidence extension must not be critical")
	}
	return ctx.Err()
}

// tcbAndQuote verifies the TCB Info (2: parse, signing chain, signature,
// cached by bytes), parses the quote (3) and checks the TCB Info's
// freshness and the policy's minimum tcbEvaluationDataNumber (4).
func (v *Verifier) tcbAndQuote(ev *envelope.SgxEvidence, now time.Time) (*verifiedTCB, *quote.Quote, error) {
	tcb, err := v.tcbs.Get(cache.KeyOf("tcb", append([][]byte{ev.TCB.Report}, ev.TCB.Certs...)...), func() (*verifiedTCB, error) {
		return v.verifyTCB(ev.TCB)
	})
	if err != nil {
		return nil, nil, err
	}
	q, err := quote.Parse(ev.Quote)
	if err != nil {
		return nil, nil, quoteRejection(err)
	}
	if q.Header.QEVendorID != quote.IntelQEVendorID {
		return nil, nil, reject("sgx.quote.header", "QE vendor ID %x is not Intel's", q.Header.QEVendorID)
	}
	info := &tcb.signed.Info
	if now.Before(info.IssueDate) {
		return nil, nil, reject("sgx.tcb.future", "TCB Info is issued %s, after the verification time %s", info.IssueDate.Format(timeFmt), now.Format(timeFmt))
	}
	if !now.Before(info.NextUpdate) {
		return nil, nil, reject("sgx.tcb.expired", "TCB Info expired at %s (verification time %s); refresh the Keep host's TCB cache (upstream Enarx: `enarx platform sgx cache-tcb`; this build has no SGX backend)", info.NextUpdate.Format(timeFmt), now.Format(timeFmt))
	}
	if !tcb.window.contains(now) {
		return nil, nil, reject("sgx.tcb.chain", "the TCB Signing chain is not valid at %s (valid %s)", now.Format(timeFmt), tcb.window)
	}
	if err := v.policy.checkEvalNumber("sgx.tcb", "TCB Info", info.TCBEvaluationDataNumber); err != nil {
		return nil, nil, err
	}
	return tcb, q, nil
}

// checkPCK verifies the PCK chain to the Intel root (cached by bytes), its
// validity at now and its CRLs (5).
func (v *Verifier) checkPCK(q *quote.Quote, entries []crl.Entry, now time.Time) (*pckChain, error) {
	pck, err := v.pckChains.Get(cache.KeyOf("pck", q.CertData), func() (*pckChain, error) {
		return v.verifyPCKChain(q.CertData)
	})
	if err != nil {
		return nil, err
	}
	if !pck.window.contains(now) {
		return nil, reject("sgx.pck.expired", "the PCK certificate chain is not valid at %s (valid %s)", now.Format(timeFmt), pck.window)
	}
	if err := v.checkCRLs(pck.chain, entries, now); err != nil {
		return nil, err
	}
	return pck, nil
}

// checkQE verifies the QE report by the PCK, the attestation key binding
// and the ISV signature, the QE and PCE SVN minimums (6), and the QE
// Identity when the evidence carries it (7; upstream never does), else
// that the QE is Intel's (checkIntelQE).
func (v *Verifier) checkQE(q *quote.Quote, pck *pckChain, qeID *envelope.TcbPackage, entries []crl.Entry, now time.Time) (*qeidentity.Level, error) {
	attKey, err := v.qes.Get(cache.KeyOf("qe", pck.chain[0].Raw, q.QEReportRaw, q.QEReportSignature[:], q.AttestationKey[:], q.QEAuthData), func() (*ecdsa.PublicKey, error) {
		return verifyQE(q, pck.key)
	})
	if err != nil {
		return nil, err
	}
	if !verifyRS(attKey, q.Signed, q.ISVSignature) {
		return nil, reject("sgx.isv.signature", "the enclave report signature does not verify with the attestation key")
	}
	if q.Header.PCESVN < MinPCESVN {
		return nil, reject("sgx.pce.svn", "PCE SVN %d is below the minimum %d; update the platform software", q.Header.PCESVN, MinPCESVN)
	}
	if q.Header.QESVN < MinQESVN {
		return nil, reject("sgx.qe.svn", "QE SVN %d is below the minimum %d; update the platform software", q.Header.QESVN, MinQESVN)
	}
	if err := v.policy.checkQESVN(&q.QEReport); err != nil {
		return nil, err
	}
	if qeID == nil {
		return nil, checkIntelQE(&q.QEReport)
	}
	return v.checkQEIdentity(qeID, q, entries, now)
}

// intelQEMRSIGNER is the MRSIGNER of Intel's DCAP Quoting Enclave (QE3),
// as Intel's QE Identity lists it, and intelQEProdID its ISVPRODID.
var intelQEMRSIGNER = [32]byte{
	0x8c, 0x4f, 0x57, 0x75, 0xd7, 0x96, 0x50, 0x3e, 0x96, 0x13, 0x7f, 0x77, 0xc6, 0x8a, 0x82, 0x9a,
	0x00, 0x56, 0xac, 0x8d, 0xed, 0x70, 0x14, 0x0b, 0x08, 0x1b, 0x09, 0x44, 0x90, 0xc5, 0x7b, 0xff,
}

const intelQEProdID = 1

// checkIntelQE pins the Quoting Enclave when the evidence carries no QE
// Identity (upstream's never does). The PCK signature on the QE report
// proves only that some enclave with the provisioning-key attribute on
// this platform made it: a host that may open /dev/sgx_provision can run
// an enclave of its own as the "QE" and have it sign quotes for any
// enclave measurement and report data. So the report must be Intel's QE:
// its MRSIGNER and ISVPRODID, not in debug mode, and its ISVSVN (signed
// by the PCK, unlike the quote header's QE SVN, which the QE writes
// itself) at least MinQESVN.
func checkIntelQE(r *quote.ReportBody) error {
	switch {
	case r.MRSIGNER != intelQEMRSIGNER:
		return reject("sgx.qe.identity", "the Quoting Enclave's MRSIGNER %x is not Intel's %x", r.MRSIGNER, intelQEMRSIGNER)
	case r.ISVProdID != intelQEProdID:
		return reject("sgx.qe.identity", "the Quoting Enclave's ISVPRODID is %d, not %d", r.ISVProdID, intelQEProdID)
	case r.Attributes&quote.AttrDebug != 0:
		return reject("sgx.qe.identity", "the Quoting Enclave runs in debug mode")
	case r.ISVSVN < MinQESVN:
		return reject("sgx.qe.svn", "the Quoting Enclave's ISVSVN %d is below the minimum %d; update the platform software", r.ISVSVN, MinQESVN)
	}
	return nil
}

// matchTCB checks that the TCB Info is for the PCK's platform (9: FMSPC and
// PCE ID) and finds the platform's TCB level (10).
func matchTCB(info *tcbinfo.Info, pck *pckChain) (*tcbinfo.Level, error) {
	if !bytes.Equal(pck.fmspc, info.FMSPC) {
		return nil, reject("sgx.tcb.fmspc", "TCB Info is for FMSPC %s but the PCK certificate has %X", info.FMSPC, pck.fmspc)
	}
	if len(info.PCEID) > 0 && !bytes.Equal(pck.pceid, info.PCEID) {
		return nil, reject("sgx.tcb.pceid", "TCB Info is for PCE ID %s but the PCK certificate has %X", info.PCEID, pck.pceid)
	}
	level, err := info.Match(pck.cpusvn, pck.pcesvn)
	if err != nil {
		return nil, rejectErr("sgx.tcb.level", err, "the platform TCB (PCK SVNs %v, PCESVN %d) is below every level in the TCB Info", pck.cpusvn, pck.pcesvn)
	}
	return level, nil
}

// checkBinding checks the CSR key (11) and its binding into the enclave's
// report data (12; skipped by a debug-mode Steward, as upstream).
func checkBinding(req *attest.VerifyRequest, q *quote.Quote) error {
	if err := checkCSRKey(req.CSR); err != nil {
		return err
	}
	want := attest.ReportData(attest.KindSGX, req.CSR.RawSubjectPublicKeyInfo)
	n := attest.ReportDataLen(attest.KindSGX)
	if !req.Debug && !bytes.Equal(q.ISVReport.ReportData[:n], want[:n]) {
		return reject("sgx.binding", "the enclave report data is not SHA-256 of the CSR public key; the CSR key was not generated in this enclave")
	}
	return nil
}

// decide applies the policy and then the TCB status rule (13) and returns
// the claims.
func (v *Verifier) decide(req *attest.VerifyRequest, q *quote.Quote, level *tcbinfo.Level, qeLevel *qeidentity.Level) (*attest.Claims, error) {
	r := &q.ISVReport
	if err := v.policy.check(r); err != nil {
		return nil, err
	}
	if err := v.policy.checkTCB("sgx.tcb", "platform", level.TCBStatus, level.AdvisoryIDs); err != nil {
		return nil, err
	}
	advisories := slices.Clone(level.AdvisoryIDs)
	if qeLevel != nil {
		if err := v.policy.checkTCB("sgx.qeid", "Quoting Enclave", qeLevel.TCBStatus, qeLevel.AdvisoryIDs); err != nil {
			return nil, err
		}
		for _, a := range qeLevel.AdvisoryIDs {
			if !slices.Contains(advisories, a) {
				advisories = append(advisories, a)
			}
		}
	}
	return &attest.Claims{
		Kind:           attest.KindSGX,
		HardwareBacked: true,
		Debug:          r.Attributes&quote.AttrDebug != 0 || req.Debug,
		Measurement:    slices.Clone(r.MRENCLAVE[:]),
		Signer:         slices.Clone(r.MRSIGNER[:]),
		TCBStatus:      level.TCBStatus,
		Advisories:     advisories,
		ReportData:     slices.Clone(r.ReportData[:]),
	}, nil
}

func quoteRejection(err error) error {
	switch {
	case errors.Is(err, quote.ErrTruncated):
		return rejectErr("sgx.quote.truncated", err, "the SGX quote is truncated")
	case errors.Is(err, quote.ErrTooLarge), errors.Is(err, quote.ErrTrailing):
		return rejectErr("sgx.quote.oversized", err, "the SGX quote has bytes beyond its own length fields")
	case errors.Is(err, quote.ErrUnsupported):
		return rejectErr("sgx.quote.header", err, "unsupported SGX quote")
	case errors.Is(err, quote.ErrCertData):
		return rejectErr("sgx.quote.certdata", err, "the SGX quote does not carry a PCK certificate chain")
	}
	return rejectErr("sgx.quote.malformed", err, "malformed SGX quote")
}

// window is the intersection of certificate validity periods.
type window struct{ notBefore, notAfter time.Time }

func windowOf(certs ...*x509.Certificate) window {
	w := window{notBefore: certs[0].NotBefore, notAfter: certs[0].NotAfter}
	for _, c := range certs[1:] {
		if c.NotBefore.After(w.notBefore) {
			w.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(w.notAfter) {
			w.notAfter = c.NotAfter
		}
	}
	return w
}

func (w window) empty() bool { return w.notAfter.Before(w.notBefore) }

// contains uses x509's rule: NotBefore ≤ t ≤ NotAfter.
func (w window) contains(t time.Time) bool { return !t.Before(w.notBefore) && !t.After(w.notAfter) }

func (w window) String() string {
	return w.notBefore.UTC().Format(timeFmt) + " to " + w.notAfter.UTC().Format(timeFmt)
}

// verifyChain verifies certs (leaf first, as carried in the evidence) to the
// embedded root. The evidence must carry exactly wantLen certificates ending
// in the Intel root itself. Validity is checked inside the window of the
// chain, so the result does not depend on the clock (the caller checks the
// returned window against it) and can be cached.
func (v *Verifier) verifyChain(certs []*x509.Certificate, wantLen int) ([]*x509.Certificate, window, error) {
	if len(certs) != wantLen {
		return nil, window{}, fmt.Errorf("the chain has %d certificates, want %d ending in the Intel SGX Root CA", len(certs), wantLen)
	}
	if !certs[len(certs)-1].Equal(v.root) {
		return nil, window{}, fmt.Errorf("the chain ends in %q, not the Intel SGX Root CA", certs[len(certs)-1].Subject)
	}
	// Intel's PCK and TCB signing chains are ECDSA P-256 throughout; refuse
	// any other key before a signature is checked. Go's chain building
	// checks the leaf's signature with the key of the (not yet trusted)
	// intermediate, and a verification with an RSA key costs what its
	// sender chooses (quadratic in the modulus: minutes for a few Mbit).
	for i, c := range certs[:len(certs)-1] {
		if _, ok := p256Key(c); !ok {
			return nil, window{}, fmt.Errorf("certificate %d (%q) has a %v key, not ECDSA P-256 as in Intel's chains", i, c.Subject, c.PublicKeyAlgorithm)
		}
	}
	chain := append(slices.Clone(certs[:len(certs)-1]), v.root)
	w := windowOf(chain...)
	if w.empty() {
		return nil, window{}, errors.New("the certificates' validity periods do not overlap")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1 : len(certs)-1] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   w.notBefore,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, window{}, err
	}
	for _, c := range chains {
		if len(c) == len(chain) && slices.EqualFunc(c, chain, (*x509.Certificate).Equal) {
			if certs[0].KeyUsage != 0 && certs[0].KeyUsage&x509.KeyUsageDigitalSignature == 0 {
				return nil, window{}, fmt.Errorf("%q may not sign (no digitalSignature key usage)", certs[0].Subject)
			}
			return chain, w, nil
		}
	}
	return nil, window{}, errors.New("the certificates do not form the expected chain to the Intel SGX Root CA")
}

func p256Key(c *x509.Certificate) (*ecdsa.PublicKey, bool) {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return k, ok && k.Curve == elliptic.P256()
}

// pckChain is a verified PCK chain with the PCK's SGX extension.
type pckChain struct {
	chain  []*x509.Certificate // PCK, intermediate CA, Intel root
	key    *ecdsa.PublicKey
	window window
	fmspc  []byte
	pceid  []byte
	pcesvn uint16
	cpusvn [tcbinfo.Components]byte
}

func (v *Verifier) verifyPCKChain(certData []byte) (*pckChain, error) {
	ders, err := quote.SplitPEMChain(certData)
	if err != nil {
		return nil, rejectErr("sgx.pck.malformed", err, "the quote's PCK certificate chain does not decode")
	}
	certs := make([]*x509.Certificate, len(ders))
	for i, d := range ders {
		if certs[i], err = x509.ParseCertificate(d); err != nil {
			return nil, rejectErr("sgx.pck.malformed", err, "PCK chain certificate %d does not parse", i)
		}
	}
	chain, w, err := v.verifyChain(certs, 3)
	if err != nil {
		return nil, rejectErr("sgx.pck.chain", err, "the PCK certificate does not chain to the Intel SGX Root CA")
	}
	key, ok := p256Key(chain[0])
	if !ok {
		return nil, reject("sgx.pck.key", "the PCK key is not ECDSA P-256")
	}
	ext, err := pcs.PckCertificateExtensions(chain[0])
	if err != nil {
		return nil, rejectErr("sgx.pck.extension", err, "the PCK certificate's SGX extension (1.2.840.113741.1.13.1) does not parse")
	}
	p := &pckChain{chain: chain, key: key, window: w, pcesvn: ext.TCB.PCESvn}
	if p.fmspc, err = hex.DecodeString(ext.FMSPC); err != nil || len(p.fmspc) != 6 {
		return nil, reject("sgx.pck.extension", "the PCK FMSPC %q is not 6 bytes", ext.FMSPC)
	}
	if p.pceid, err = hex.DecodeString(ext.PCEID); err != nil || len(p.pceid) != 2 {
		return nil, reject("sgx.pck.extension", "the PCK PCE ID %q is not 2 bytes", ext.PCEID)
	}
	if len(ext.TCB.CPUSvnComponents) != tcbinfo.Components {
		return nil, reject("sgx.pck.extension", "the PCK has %d TCB components, want %d", len(ext.TCB.CPUSvnComponents), tcbinfo.Components)
	}
	copy(p.cpusvn[:], ext.TCB.CPUSvnComponents)
	return p, nil
}

// verifiedTCB is TCB Info whose signature and signing chain verified.
type verifiedTCB struct {
	signed *tcbinfo.Signed
	chain  []*x509.Certificate // TCB Signing, Intel root
	window window
}

func (v *Verifier) verifyTCB(p envelope.TcbPackage) (*verifiedTCB, error) {
	signed, err := tcbinfo.Parse(p.Report)
	if err != nil {
		return nil, rejectErr("sgx.tcb.malformed", err, "the TCB Info does not parse")
	}
	chain, w, err := v.verifySignedJSON("sgx.tcb", "TCB Info", p.Certs, signed.Raw, signed.Signature)
	if err != nil {
		return nil, err
	}
	return &verifiedTCB{signed: signed, chain: chain, window: w}, nil
}

// verifySignedJSON verifies Intel collateral (TCB Info, QE Identity): its
// issuer chain [TCB Signing, Root] to the embedded root and its signature
// over raw. Codes are prefix + ".malformed", ".chain", ".signature".
func (v *Verifier) verifySignedJSON(prefix, what string, ders [][]byte, raw []byte, sig [64]byte) ([]*x509.Certificate, window, error) {
	certs := make([]*x509.Certificate, len(ders))
	for i, d := range ders {
		var err error
		if certs[i], err = x509.ParseCertificate(d); err != nil {
			return nil, window{}, rejectErr(prefix+".malformed", err, "%s issuer certificate %d does not parse", what, i)
		}
	}
	chain, w, err := v.verifyChain(certs, 2)
	if err != nil {
		return nil, window{}, rejectErr(prefix+".chain", err, "the %s signing certificate does not chain to the Intel SGX Root CA", what)
	}
	key, ok := p256Key(chain[0])
	if !ok {
		return nil, window{}, reject(prefix+".chain", "the %s signing key is not ECDSA P-256", what)
	}
	if !verifyRS(key, raw, sig) {
		return nil, window{}, reject(prefix+".signature", "the %s signature does not verify with the TCB Signing key", what)
	}
	return chain, w, nil
}

// verifiedQEID is QE Identity whose signature and signing chain verified.
type verifiedQEID struct {
	signed *qeidentity.Signed
	chain  []*x509.Certificate
	window window
}

// checkQEIdentity verifies QE Identity collateral and checks the quote's QE
// report against it (like Intel's QVL): MRSIGNER, ISVPRODID, masked
// MISCSELECT and ATTRIBUTES, and the QE's TCB level by ISVSVN.
func (v *Verifier) checkQEIdentity(p *envelope.TcbPackage, q *quote.Quote, entries []crl.Entry, now time.Time) (*qeidentity.Level, error) {
	id, err := v.qeids.Get(cache.KeyOf("qeid", append([][]byte{p.Report}, p.Certs...)...), func() (*verifiedQEID, error) {
		signed, err := qeidentity.Parse(p.Report)
		if err != nil {
			return nil, rejectErr("sgx.qeid.malformed", err, "the QE Identity does not parse")
		}
		chain, w, err := v.verifySignedJSON("sgx.qeid", "QE Identity", p.Certs, signed.Raw, signed.Signature)
		if err != nil {
			return nil, err
		}
		return &verifiedQEID{signed: signed, chain: chain, window: w}, nil
	})
	if err != nil {
		return nil, err
	}
	i := &id.signed.Identity
	if now.Before(i.IssueDate) {
		return nil, reject("sgx.qeid.future", "QE Identity is issued %s, after the verification time %s", i.IssueDate.Format(timeFmt), now.Format(timeFmt))
	}
	if !now.Before(i.NextUpdate) {
		return nil, reject("sgx.qeid.expired", "QE Identity expired at %s (verification time %s); refresh it on the host", i.NextUpdate.Format(timeFmt), now.Format(timeFmt))
	}
	if !id.window.contains(now) {
		return nil, reject("sgx.qeid.chain", "the QE Identity signing chain is not valid at %s (valid %s)", now.Format(timeFmt), id.window)
	}
	if err := v.policy.checkEvalNumber("sgx.qeid", "QE Identity", i.TCBEvaluationDataNumber); err != nil {
		return nil, err
	}
	if err := v.checkCRLs(id.chain, entries, now); err != nil {
		return nil, err
	}
	r := &q.QEReport
	switch {
	case !bytes.Equal(r.MRSIGNER[:], i.MRSIGNER):
		return nil, reject("sgx.qeid.mismatch", "the Quoting Enclave's MRSIGNER %x is not Intel's %s", r.MRSIGNER, i.MRSIGNER)
	case r.ISVProdID != i.ISVProdID:
		return nil, reject("sgx.qeid.mismatch", "the Quoting Enclave's ISVPRODID %d is not %d", r.ISVProdID, i.ISVProdID)
	case !i.MatchesMiscSelect(q.QEReportRaw[16:20]):
		return nil, reject("sgx.qeid.mismatch", "the Quoting Enclave's MISCSELECT does not match the QE Identity")
	case !i.MatchesAttributes(q.QEReportRaw[48:64]):
		return nil, reject("sgx.qeid.mismatch", "the Quoting Enclave's ATTRIBUTES do not match the QE Identity")
	}
	level, err := i.Match(r.ISVSVN)
	if err != nil {
		return nil, rejectErr("sgx.qeid.level", err, "the Quoting Enclave's ISVSVN %d is below every QE Identity level", r.ISVSVN)
	}
	return level, nil
}

func (v *Verifier) checkCRLs(chain []*x509.Certificate, entries []crl.Entry, now time.Time) error {
	parts := make([][]byte, 0, len(chain)+2*len(entries))
	for _, c := range chain {
		parts = append(parts, c.Raw)
	}
	for _, e := range entries {
		parts = append(parts, []byte(e.URL), e.DER)
	}
	res, err := v.crls.Get(cache.KeyOf("crl", parts...), func() (*crl.Result, error) {
		res, err := crl.Check(chain, entries, crl.Options{RequireEvery: true})
		if err != nil {
			return nil, crlRejection(err)
		}
		return res, nil
	})
	if err != nil {
		return err
	}
	if err := res.CheckTime(now); err != nil {
		return crlRejection(err)
	}
	return nil
}

func crlRejection(err error) error {
	switch {
	case errors.Is(err, crl.ErrRevoked):
		return rejectErr("sgx.crl.revoked", err, "a certificate in the SGX chain is revoked")
	case errors.Is(err, crl.ErrExpired):
		return rejectErr("sgx.crl.expired", err, "an Intel CRL in the evidence has expired; refresh the Keep host's CRL cache (upstream Enarx: `enarx platform sgx cache-crl`; this build has no SGX backend)")
	case errors.Is(err, crl.ErrNotYetValid):
		return rejectErr("sgx.crl.future", err, "an Intel CRL in the evidence is not yet valid")
	case errors.Is(err, crl.ErrSignature):
		return rejectErr("sgx.crl.signature", err, "an Intel CRL in the evidence is not signed by its issuer")
	case errors.Is(err, crl.ErrMissing):
		return rejectErr("sgx.crl.missing", err, "the evidence lacks an Intel CRL")
	}
	return rejectErr("sgx.crl.malformed", err, "an Intel CRL in the evidence does not parse")
}

// verifyQE checks the QE report signature by the PCK key and that the QE
// report data commits to the attestation key, and returns that key.
func verifyQE(q *quote.Quote, pckKey *ecdsa.PublicKey) (*ecdsa.PublicKey, error) {
	if !verifyRS(pckKey, q.QEReportRaw, q.QEReportSignature) {
		return nil, reject("sgx.qe.signature", "the Quoting Enclave report signature does not verify with the PCK key")
	}
	h := sha256.New()
	h.Write(q.AttestationKey[:])
	h.Write(q.QEAuthData)
	var want [64]byte
	h.Sum(want[:0])
	if q.QEReport.ReportData != want {
		return nil, reject("sgx.qe.reportdata", "the Quoting Enclave report does not commit to the attestation key")
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.AttestationKey[:]...))
	if err != nil {
		return nil, rejectErr("sgx.isv.key", err, "the attestation key is not a P-256 point")
	}
	return key, nil
}

// verifyRS verifies an ECDSA P-256/SHA-256 signature given as r‖s.
func verifyRS(key *ecdsa.PublicKey, msg []byte, sig [64]byte) bool {
	d := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(key, d[:], r, s)
}

func checkCSRKey(csr *x509.CertificateRequest) error {
	k, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return reject("sgx.csr.key", "an SGX Keep's CSR key must be ECDSA P-256 (like the PCK), got %T", csr.PublicKey)
	}
	return nil
}
