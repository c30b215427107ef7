// Package crl checks a verified certificate chain against the certificate
// revocation lists (CRLs) that travel inside TEE evidence (Intel PCS and AMD
// KDS CRLs). The SGX and SEV-SNP verifiers use it; the TDX verifier leaves
// CRLs to go-tdx-guest, which checks them itself.
//
// What it trusts: the chain it is given must already be verified (each
// certificate signed by the next). It trusts no CRL: a CRL counts only if
// its signature verifies with the key of the issuer it is matched to.
//
// CRLs are matched to each issuer→subject link of the chain two ways:
//
//   - by URL, like upstream Steward: an entry whose download URL equals one
//     of the subject's CRL distribution points (or, if the subject has none,
//     the issuer's — AMD's VCEK case);
//   - by issuer name: an entry whose CRL issuer equals the issuer's subject.
//     This covers PCK certificates whose distribution point names a URL the
//     host did not download from (the Ice Lake Xeon PCK points at the PCS v3
//     URL while Enarx fetches v4).
//
// Links are processed root first. A CRL must verify with the key of the
// issuer of every link it is applied to, with one exception: a subject
// without distribution points inherits, by URL, the CRL its issuer was
// checked against (upstream's rule for AMD, where the VCEK has no
// distribution point and inherits the ASK's, i.e. the ARK's CRL). So a
// root's CRL served under a PCK's own CRL URL is refused, not taken for
// the PCK CA's.
//
// Check does no time comparison, so its result depends only on the bytes
// and can be cached; Result.CheckTime applies the verification clock.
package crl

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors that Check and CheckTime wrap; verifiers map them to rejection codes.
var (
	ErrMalformed   = errors.New("malformed CRL")
	ErrSignature   = errors.New("CRL is not signed by the certificate's issuer")
	ErrRevoked     = errors.New("certificate is revoked")
	ErrMissing     = errors.New("no CRL covers the certificate")
	ErrExpired     = errors.New("CRL has expired")
	ErrNotYetValid = errors.New("CRL is not yet valid")
)

// Entry is one CRL as carried in evidence, with the URL it was fetched from.
type Entry struct {
	URL string
	DER []byte
}

// Options tune how strict Check is. Without any, Check only demands that
// at least one CRL was applied somewhere on the chain (upstream's rule for
// Intel, which lets a client drop the leaf CA's CRL).
type Options struct {
	// RequireEvery demands a CRL for every issuer→subject link (SGX).
	RequireEvery bool
	// RequireRoot demands a CRL from the root for the link just below it;
	// lower links may inherit it by URL or go without (AMD: the ARK's CRL,
	// which revokes ASKs, is required; the VCEK inherits it).
	RequireRoot bool
}

// Used describes one CRL that was applied.
type Used struct {
	URL        string
	DER        []byte // the CRL as carried in the evidence
	Issuer     string
	ThisUpdate time.Time
	NextUpdate time.Time
	// ByIssuer is true when the CRL was matched by issuer name only.
	ByIssuer bool
}

// Result is the outcome of a successful Check.
type Result struct {
	// Used lists the applied CRLs in the order they were first applied:
	// those of the link below the root first.
	Used []Used
	// NotBefore and NotAfter bound the time in which every used CRL is
	// current: latest thisUpdate, earliest nextUpdate.
	NotBefore, NotAfter time.Time
}

// CheckTime fails unless every used CRL is current at now
// (thisUpdate ≤ now < nextUpdate).
func (r *Result) CheckTime(now time.Time) error {
	for _, u := range r.Used {
		if now.Before(u.ThisUpdate) {
			return fmt.Errorf("%w: CRL from %s (issuer %s) starts at %s, after the verification time %s",
				ErrNotYetValid, u.URL, u.Issuer, u.ThisUpdate.Format(time.RFC3339), now.Format(time.RFC3339))
		}
		if !now.Before(u.NextUpdate) {
			return fmt.Errorf("%w: CRL from %s (issuer %s) expired at %s, verification time %s; fetch fresh CRLs on the host",
				ErrExpired, u.URL, u.Issuer, u.NextUpdate.Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}
	return nil
}

type parsed struct {
	entry Entry
	list  *x509.RevocationList
}

// Check applies the CRLs in entries to chain, which is ordered leaf first and
// must already be verified (chain[i] issued by chain[i+1]). Every entry must
// parse; entries that match no link are ignored.
func Check(chain []*x509.Certificate, entries []Entry, opts Options) (*Result, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("%w: chain of %d certificates has no issuer→subject link", ErrMissing, len(chain))
	}
	lists := make([]parsed, 0, len(entries))
	for i, e := range entries {
		l, err := x509.ParseRevocationList(e.DER)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d (%s): %v", ErrMalformed, i, e.URL, err)
		}
		if l.NextUpdate.IsZero() {
			return nil, fmt.Errorf("%w: entry %d (%s) has no nextUpdate", ErrMalformed, i, e.URL)
		}
		lists = append(lists, parsed{entry: e, list: l})
	}

	res := &Result{}
	// verifiedBy[n] is the issuer whose key verified lists[n], if any.
	verifiedBy := make([]*x509.Certificate, len(lists))
	// Root first, like upstream, so that a CRL already verified for a link
	// nearer the root can be inherited below it (AMD: the ARK's CRL, found
	// under the ASK's distribution point, is applied to the VCEK too).
	for i := len(chain) - 2; i >= 0; i-- {
		subject, issuer := chain[i], chain[i+1]
		urls := subject.CRLDistributionPoints
		inherits := len(urls) == 0
		if inherits {
			urls = issuer.CRLDistributionPoints
		}
		applied := 0
		for n, p := range lists {
			byURL := slices.Contains(urls, p.entry.URL)
			byIssuer := bytes.Equal(p.list.RawIssuer, issuer.RawSubject)
			if !byURL && !byIssuer {
				continue
			}
			switch {
			case verifiedBy[n] == issuer:
			case verifiedBy[n] != nil && inherits && byURL:
				// The subject names no CRL of its own and inherits the one
				// its issuer was checked against. Only then may a CRL from
				// another issuer stand for this link: where the subject
				// names its own, a CRL found there must be its issuer's.
			default:
				if err := p.list.CheckSignatureFrom(issuer); err != nil {
					return nil, fmt.Errorf("%w: CRL from %s for %q: %v", ErrSignature, p.entry.URL, issuer.Subject, err)
				}
				if verifiedBy[n] == nil {
					res.add(Used{
						URL:        p.entry.URL,
						DER:        p.entry.DER,
						Issuer:     issuer.Subject.String(),
						ThisUpdate: p.list.ThisUpdate,
						NextUpdate: p.list.NextUpdate,
						ByIssuer:   !byURL,
					})
				}
				verifiedBy[n] = issuer
			}
			for _, rc := range p.list.RevokedCertificateEntries {
				if rc.SerialNumber != nil && rc.SerialNumber.Cmp(subject.SerialNumber) == 0 {
					return nil, fmt.Errorf("%w: %q (serial %x) is on the CRL of %q from %s",
						ErrRevoked, subject.Subject, subject.SerialNumber, issuer.Subject, p.entry.URL)
				}
			}
			applied++
		}
		if applied == 0 && (opts.RequireEvery || opts.RequireRoot && i == len(chain)-2) {
			return nil, fmt.Errorf("%w: no CRL in the evidence is from %v or issued by %q (for %q)",
				ErrMissing, urls, issuer.Subject, subject.Subject)
		}
	}
	if len(res.Used) == 0 {
		return nil, fmt.Errorf("%w: none of the %d CRLs in the evidence applies to the certificate chain", ErrMissing, len(entries))
	}
	return res, nil
}

func (r *Result) add(u Used) {
	if len(r.Used) == 0 || u.ThisUpdate.After(r.NotBefore) {
		r.NotBefore = u.ThisUpdate
	}
	if len(r.Used) == 0 || u.NextUpdate.Before(r.NotAfter) {
		r.NotAfter = u.NextUpdate
	}
	r.Used = append(r.Used, u)
}
