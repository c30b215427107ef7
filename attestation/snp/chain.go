package snp

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/crl"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/internal/cache"
)

// Root is a trusted AMD key pair for one product line: the self-signed ARK
// and the ASK it certifies, which in turn certifies VCEKs.
type Root struct {
	ProductLine string // "Milan", "Genoa", "Turin"
	ARK, ASK    *x509.Certificate
	// Emulated marks a root that is not AMD's (tests, emulators); claims
	// verified under it are recorded as not hardware-backed.
	Emulated bool
}

// DefaultRoots returns AMD's current ARK/ASK pairs for Milan, Genoa and Turin
// as embedded in go-sev-guest. (Upstream Steward's Genoa ASK 0x020001 is
// revoked and deliberately not among them.)
func DefaultRoots() ([]Root, error) {
	var out []Root
	for _, pl := range []string{"Milan", "Genoa", "Turin"} {
		r, err := trust.GetDefaultRootCerts(pl)
		if err != nil {
			return nil, fmt.Errorf("go-sev-guest roots for %s: %w", pl, err)
		}
		if r.ProductCerts == nil || r.ProductCerts.Ark == nil || r.ProductCerts.Ask == nil {
			return nil, fmt.Errorf("go-sev-guest roots for %s are incomplete", pl)
		}
		out = append(out, Root{ProductLine: pl, ARK: r.ProductCerts.Ark, ASK: r.ProductCerts.Ask})
	}
	return out, nil
}

// chainResult is what a verified ARK→ASK→VCEK chain plus its CRL establish,
// independent of the clock. The clock is applied per request through the
// validity windows.
type chainResult struct {
	vcek *x509.Certificate
	exts *kds.Extensions
	root *Root
	// certNotBefore/certNotAfter: when ARK, ASK and VCEK are all valid.
	certNotBefore, certNotAfter time.Time
	// crlThisUpdate/crlNextUpdate: the CRL's validity.
	crlThisUpdate, crlNextUpdate time.Time
}

// chainKey identifies the chain inputs of an evidence: the VCEK and every
// CRL entry (URL and bytes).
func chainKey(e *envelope.SnpEvidence) cache.Key {
	parts := [][]byte{e.VCEK}
	for _, c := range e.CRLs {
		parts = append(parts, []byte(c.URL), c.CRL)
	}
	return cache.KeyOf("snp.chain", parts...)
}

// mapGetter serves CRLs from the evidence to go-sev-guest: the request path
// never touches the network.
type mapGetter map[string][]byte

func (m mapGetter) Get(url string) ([]byte, error) {
	if b, ok := m[url]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("offline: %s is not in the evidence", url)
}

// verifyChain establishes that the evidence's VCEK chains to one of roots and
// that the ASK is not revoked by a CRL (from the evidence) signed by the ARK.
// It does not look at the clock; see chainResult. It also verifies the report
// signature, because go-sev-guest's cross-check of the chain does.
func verifyChain(e *envelope.SnpEvidence, report *spb.Report, roots []Root) (*chainResult, error) {
	vcek, err := x509.ParseCertificate(e.VCEK)
	if err != nil {
		return nil, attest.RejectErr(CodeVCEKParse, err, "the VCEK certificate in the evidence does not parse")
	}
	exts, err := kds.VcekCertificateExtensions(vcek)
	if err != nil {
		return nil, attest.RejectErr(CodeVCEKParse, err, "the VCEK certificate lacks AMD's VCEK extensions")
	}
	var root *Root
	for i := range roots {
		if bytes.Equal(vcek.RawIssuer, roots[i].ASK.RawSubject) && vcek.CheckSignatureFrom(roots[i].ASK) == nil {
			root = &roots[i]
			break
		}
	}
	if root == nil {
		return nil, attest.Reject(CodeVCEKChain, "the VCEK (issuer %q) is not signed by a trusted AMD ASK", vcek.Issuer.CommonName)
	}
	res := &chainResult{vcek: vcek, exts: exts, root: root}
	res.certNotBefore, res.certNotAfter = latest(root.ARK.NotBefore, root.ASK.NotBefore, vcek.NotBefore),
		earliest(root.ARK.NotAfter, root.ASK.NotAfter, vcek.NotAfter)
	if !res.certNotBefore.Before(res.certNotAfter) {
		return nil, attest.Reject(CodeVCEKExpired, "the ARK, ASK and VCEK are never valid at the same time")
	}

	if err := authenticateCRLs(e.CRLs, roots); err != nil {
		return nil, err
	}
	revocation, err := checkRevocation(root, vcek, e.CRLs)
	if err != nil {
		return nil, err
	}
	res.crlThisUpdate, res.crlNextUpdate = revocation.NotBefore, revocation.NotAfter

	// Cross-check with go-sev-guest's verifier (KDS certificate profile,
	// product name, x509 path, CRL, report signature), offline, at an instant
	// at which everything is valid. A fresh AMDRootCerts keeps its CRL cache
	// out of shared state.
	at := latest(res.certNotBefore, res.crlThisUpdate)
	if !at.Before(earliest(res.certNotAfter, res.crlNextUpdate)) {
		return nil, attest.Reject(CodeCRLExpired, "the %s CRL is not valid while the VCEK chain is", root.ProductLine)
	}
	// The cross-check below also verifies the report signature; check it
	// first so that a bad signature gets its own code.
	if err := reportSignature(e.Report, vcek); err != nil {
		return nil, err
	}
	// go-sev-guest fetches the ARK's CRL from the ASK's distribution
	// points: serve it the one applied to the ASK (the first used).
	getter := mapGetter{}
	for _, u := range root.ASK.CRLDistributionPoints {
		getter[u] = revocation.Used[0].DER
	}
	trusted := &trust.AMDRootCerts{ProductLine: root.ProductLine, ProductCerts: &trust.ProductCerts{Ark: root.ARK, Ask: root.ASK}}
	err = verify.SnpAttestation(&spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{VcekCert: e.VCEK}},
		&verify.Options{
			CheckRevocations:    true,
			DisableCertFetching: true,
			Getter:              getter,
			Now:                 at,
			TrustedRoots:        map[string][]*trust.AMDRootCerts{root.ProductLine: {trusted}},
		})
	if err != nil {
		return nil, attest.RejectErr(CodeVCEKChain, err, "go-sev-guest rejects the VCEK chain")
	}
	return res, nil
}

// authenticateCRLs checks every CRL in the evidence, also those the chain
// does not use (upstream Keeps send the CRLs of every product line): each
// must parse and be signed by the ARK of a trusted root that it names as
// its issuer. The unused ones do not change the decision, but nothing in
// accepted evidence goes unauthenticated. (At most envelope.MaxCRLs, each
// checked once per distinct evidence: the chain cache keys on them.)
func authenticateCRLs(crls envelope.CrlList, roots []Root) error {
	for i, c := range crls {
		l, err := x509.ParseRevocationList(c.CRL)
		if err != nil {
			return attest.RejectErr(CodeCRLParse, err, "CRL %d (%q) in the evidence does not parse", i, c.URL)
		}
		signed := false
		for j := range roots {
			if bytes.Equal(l.RawIssuer, roots[j].ARK.RawSubject) && l.CheckSignatureFrom(roots[j].ARK) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return attest.Reject(CodeCRLSignature, "CRL %d (%q) in the evidence is not signed by a trusted AMD ARK", i, c.URL)
		}
	}
	return nil
}

// checkRevocation applies the evidence's CRLs to the chain VCEK → ASK →
// ARK with attestation/crl: the ARK's CRL (matched by the ASK's
// distribution point, or by issuer) is required and must be signed by the
// ARK; neither the ASK nor the VCEK may be on it. The clock is not applied
// here.
func checkRevocation(root *Root, vcek *x509.Certificate, crls envelope.CrlList) (*crl.Result, error) {
	entries := make([]crl.Entry, len(crls))
	for i, c := range crls {
		entries[i] = crl.Entry{URL: c.URL, DER: c.CRL}
	}
	res, err := crl.Check([]*x509.Certificate{vcek, root.ASK, root.ARK}, entries, crl.Options{RequireRoot: true})
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, crl.ErrMissing):
		return nil, attest.RejectErr(CodeCRLMissing, err, "the evidence carries no CRL from ARK-%s (%s)", root.ProductLine, strings.Join(root.ASK.CRLDistributionPoints, ", "))
	case errors.Is(err, crl.ErrSignature):
		return nil, attest.RejectErr(CodeCRLSignature, err, "the %s CRL is not signed by the ARK", root.ProductLine)
	case errors.Is(err, crl.ErrRevoked):
		return nil, attest.RejectErr(CodeCRLRevoked, err, "the %s ASK or the VCEK is revoked", root.ProductLine)
	}
	return nil, attest.RejectErr(CodeCRLParse, err, "a CRL in the evidence is malformed")
}

// checkTime applies the clock to a verified chain.
func (c *chainResult) checkTime(now time.Time) error {
	if now.Before(c.certNotBefore) || now.After(c.certNotAfter) {
		return attest.Reject(CodeVCEKExpired, "the VCEK chain is valid from %s to %s, not at %s",
			c.certNotBefore.UTC().Format(time.RFC3339), c.certNotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(c.crlThisUpdate) {
		return attest.Reject(CodeCRLNotYetValid, "the %s CRL is issued at %s, after the verification time %s",
			c.root.ProductLine, c.crlThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.crlNextUpdate) {
		return attest.Reject(CodeCRLExpired, "the %s CRL expired at %s (verification time %s); fetch a current CRL",
			c.root.ProductLine, c.crlNextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func latest(ts ...time.Time) time.Time {
	out := ts[0]
	for _, t := range ts[1:] {
		if t.After(out) {
			out = t
		}
	}
	return out
}

func earliest(ts ...time.Time) time.Time {
	out := ts[0]
	for _, t := range ts[1:] {
		if t.Before(out) {
			out = t
		}
	}
	return out
}

// reportSignature checks the report's ECDSA P-384 signature with the VCEK.
func reportSignature(raw []byte, vcek *x509.Certificate) error {
	if a := abi.SignatureAlgo(raw); a != abi.SignEcdsaP384Sha384 {
		return attest.Reject(CodeReportSignatureAlgo, "the report signature algorithm is %d, want 1 (ECDSA P-384 with SHA-384)", a)
	}
	if err := verify.SnpReportSignature(raw, vcek); err != nil {
		return attest.RejectErr(CodeReportSignature, err, "the report signature does not verify with the VCEK")
	}
	return nil
}
