package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

var t0 = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCert(t testing.TB, name string, serial int64, parent *ca, isCA bool, dps []string) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newCertKey(t, name, serial, parent, isCA, dps, key)
}

func newCertKey(t testing.TB, name string, serial int64, parent *ca, isCA bool, dps []string, key crypto.Signer) *ca {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t0.Add(-time.Hour * 24 * 365),
		NotAfter:              t0.Add(time.Hour * 24 * 365),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		CRLDistributionPoints: dps,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: c, key: key}
}

func (c *ca) crl(t testing.TB, this, next time.Time, revoked ...int64) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: this, NextUpdate: next, RevokedCertificateEntries: entries,
	}, c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

const (
	rootURL  = "https://example.test/root.crl"
	interURL = "https://example.test/v4/inter.crl"
)

// pki builds root → intermediate → leaf, with the leaf naming oldURL.
func pki(t testing.TB, leafURL string) (root, inter, leaf *ca) {
	root = newCert(t, "root", 1, nil, true, nil)
	inter = newCert(t, "inter", 2, root, true, []string{rootURL})
	leaf = newCert(t, "leaf", 3, inter, false, []string{leafURL})
	return
}

func chainOf(cs ...*ca) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range cs {
		out = append(out, c.cert)
	}
	return out
}

func TestCheck(t *testing.T) {
	root, inter, leaf := pki(t, interURL)
	other := newCert(t, "inter", 9, root, true, nil) // same name, other key
	this, next := t0.Add(-time.Hour), t0.Add(time.Hour)
	rootCRL := root.crl(t, this, next)
	interCRL := inter.crl(t, this, next)
	chain := chainOf(leaf, inter, root)
	for _, c := range []struct {
		name    string
		entries []Entry
		opts    Options
		want    error
	}{
		{"both by url", []Entry{{rootURL, rootCRL}, {interURL, interCRL}}, Options{RequireEvery: true}, nil},
		{"leaf crl by issuer only", []Entry{{rootURL, rootCRL}, {"https://elsewhere/x.crl", interCRL}}, Options{RequireEvery: true}, nil},
		{"leaf revoked", []Entry{{rootURL, rootCRL}, {interURL, inter.crl(t, this, next, 7, 3)}}, Options{}, ErrRevoked},
		{"leaf revoked, crl found by issuer", []Entry{{rootURL, rootCRL}, {"x", inter.crl(t, this, next, 3)}}, Options{}, ErrRevoked},
		{"intermediate revoked", []Entry{{rootURL, root.crl(t, this, next, 2)}, {interURL, interCRL}}, Options{}, ErrRevoked},
		{"crl by wrong key at url", []Entry{{rootURL, rootCRL}, {interURL, other.crl(t, this, next)}}, Options{}, ErrSignature},
		// The leaf names its own CRL URL: the root's CRL served there does
		// not cover it (else a revoked leaf would pass against the root's list).
		{"root crl served as the leaf's", []Entry{{rootURL, rootCRL}, {interURL, rootCRL}}, Options{RequireEvery: true}, ErrSignature},
		{"leaf crl missing, upstream rule", []Entry{{rootURL, rootCRL}}, Options{}, nil},
		{"leaf crl missing, strict", []Entry{{rootURL, rootCRL}}, Options{RequireEvery: true}, ErrMissing},
		{"leaf crl missing, root required", []Entry{{rootURL, rootCRL}}, Options{RequireRoot: true}, nil},
		{"root crl missing, root required", []Entry{{interURL, interCRL}}, Options{RequireRoot: true}, ErrMissing},
		{"root crl missing, upstream rule", []Entry{{interURL, interCRL}}, Options{}, nil},
		{"none", nil, Options{}, ErrMissing},
		{"unrelated only", []Entry{{"https://x/y", newCert(t, "z", 5, nil, true, nil).crl(t, this, next)}}, Options{}, ErrMissing},
		{"malformed", []Entry{{rootURL, rootCRL}, {interURL, []byte{0x30, 0}}}, Options{}, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Check(chain, c.entries, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if err == nil {
				if err := res.CheckTime(t0); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCheckTime(t *testing.T) {
	root, inter, leaf := pki(t, interURL)
	res, err := Check(chainOf(leaf, inter, root), []Entry{
		{rootURL, root.crl(t, t0.Add(-48*time.Hour), t0.Add(48*time.Hour))},
		{interURL, inter.crl(t, t0.Add(-time.Hour), t0.Add(time.Hour))},
	}, Options{RequireEvery: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotBefore.Equal(t0.Add(-time.Hour)) || !res.NotAfter.Equal(t0.Add(time.Hour)) || len(res.Used) != 2 {
		t.Fatalf("window %v–%v, %d used", res.NotBefore, res.NotAfter, len(res.Used))
	}
	// Root link first, each with the bytes it was given.
	if u := res.Used[0]; u.URL != rootURL || u.Issuer != root.cert.Subject.String() {
		t.Fatalf("first used CRL is %s from %s, want the root's", u.URL, u.Issuer)
	}
	for _, u := range res.Used {
		l, err := x509.ParseRevocationList(u.DER)
		if err != nil || !l.ThisUpdate.Equal(u.ThisUpdate) {
			t.Fatalf("used CRL %s: DER does not match (%v)", u.URL, err)
		}
	}
	for at, want := range map[time.Time]error{
		t0:                       nil,
		t0.Add(-time.Hour):       nil,
		t0.Add(-2 * time.Hour):   ErrNotYetValid,
		t0.Add(time.Hour):        ErrExpired, // nextUpdate ≤ now fails, like upstream
		t0.Add(30 * time.Hour):   ErrExpired,
		t0.Add(-100 * time.Hour): ErrNotYetValid,
	} {
		if err := res.CheckTime(at); !errors.Is(err, want) {
			t.Errorf("%v: got %v, want %v", at, err, want)
		}
	}
}

// TestIssuerDistributionPoint: a subject without distribution points (AMD's
// VCEK) is looked up under its issuer's URL.
func TestIssuerDistributionPoint(t *testing.T) {
	root := newCert(t, "ark", 1, nil, true, nil)
	ask := newCert(t, "ask", 2, root, true, []string{rootURL})
	vcek := newCert(t, "vcek", 3, ask, false, nil)
	// The ARK's CRL is verified for the (ark, ask) link and then reused
	// for the (ask, vcek) link, whose serial it is checked against.
	res, err := Check(chainOf(vcek, ask, root), []Entry{{rootURL, root.crl(t, t0, t0.Add(time.Hour))}}, Options{RequireEvery: true})
	if err != nil || len(res.Used) != 1 {
		t.Fatalf("got %v, %v", res, err)
	}
	if _, err := Check(chainOf(vcek, ask, root), []Entry{{rootURL, root.crl(t, t0, t0.Add(time.Hour), 3)}}, Options{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("VCEK serial on the ARK's CRL: got %v", err)
	}
	// A CRL under that URL that no certificate above signed is refused.
	if _, err := Check(chainOf(vcek, ask, root), []Entry{{rootURL, ask.crl(t, t0, t0.Add(time.Hour))}}, Options{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestShortChain(t *testing.T) {
	root := newCert(t, "root", 1, nil, true, nil)
	if _, err := Check(chainOf(root), nil, Options{}); !errors.Is(err, ErrMissing) {
		t.Fatal(err)
	}
}

// checkSeed is one input of FuzzCheck.
type checkSeed struct {
	url1 string
	crl1 []byte
	url2 string
	crl2 []byte
}

// checkSeeds returns FuzzCheck's chain and seeds. The PKI is pki's with
// fixed keys, which sign deterministically: the CRLs are the same bytes
// every run, so the committed corpus verifies against the chain.
func checkSeeds(t testing.TB) ([]*x509.Certificate, []checkSeed) {
	key := func(name string) crypto.Signer {
		return testutil.FixedECDSAKey(t, elliptic.P256(), "crl.FuzzCheck "+name)
	}
	root := newCertKey(t, "root", 1, nil, true, nil, key("root"))
	inter := newCertKey(t, "inter", 2, root, true, []string{rootURL}, key("inter"))
	leaf := newCertKey(t, "leaf", 3, inter, false, []string{interURL}, key("leaf"))
	// A CA with the intermediate's name and another key: its CRLs name
	// the intermediate as their issuer but are not signed by it.
	forger := newCertKey(t, "inter", 9, root, true, nil, key("forger"))
	return chainOf(leaf, inter, root), []checkSeed{
		{rootURL, root.crl(t, t0, t0.Add(time.Hour)), interURL, inter.crl(t, t0, t0.Add(time.Hour), 3)},
		{"x", []byte{0x30, 0x00}, "", []byte{}},
		{rootURL, root.crl(t, t0, t0.Add(time.Hour)), interURL, inter.crl(t, t0, t0.Add(time.Hour))},
		{rootURL, root.crl(t, t0, t0.Add(time.Hour)), interURL, forger.crl(t, t0, t0.Add(time.Hour))},
	}
}

// checkAccepted fails t unless every CRL res applied verifies with the key
// of the chain certificate it names as its issuer, and none of them lists
// the certificate that issuer certifies in chain (leaf first).
func checkAccepted(t *testing.T, chain []*x509.Certificate, res *Result) {
	t.Helper()
	if len(res.Used) == 0 {
		t.Fatal("accepted without applying a CRL")
	}
	for _, u := range res.Used {
		l, err := x509.ParseRevocationList(u.DER)
		if err != nil {
			t.Fatalf("applied CRL from %s does not parse: %v", u.URL, err)
		}
		i := slices.IndexFunc(chain[1:], func(c *x509.Certificate) bool { return c.Subject.String() == u.Issuer })
		if i < 0 {
			t.Fatalf("applied CRL from %s names issuer %q, which is not in the chain", u.URL, u.Issuer)
		}
		issuer, subject := chain[i+1], chain[i]
		if err := l.CheckSignatureFrom(issuer); err != nil {
			t.Fatalf("accepted a CRL from %s that %q did not sign: %v", u.URL, u.Issuer, err)
		}
		for _, rc := range l.RevokedCertificateEntries {
			if rc.SerialNumber.Cmp(subject.SerialNumber) == 0 {
				t.Fatalf("accepted although the CRL from %s revokes %q", u.URL, subject.Subject)
			}
		}
	}
}

// FuzzCheck feeds arbitrary CRL bytes (and URLs) to Check against a fixed
// chain: it must fail cleanly, and anything it accepts must have been
// signed by the test CAs and revoke nothing on the chain (checkAccepted).
func FuzzCheck(f *testing.F) {
	chain, seeds := checkSeeds(f)
	corpus := make([][]any, len(seeds))
	for i, s := range seeds {
		f.Add(s.url1, s.crl1, s.url2, s.crl2)
		corpus[i] = []any{s.url1, s.crl1, s.url2, s.crl2}
	}
	testutil.CheckSeedCorpusArgs(f, "FuzzCheck", corpus)
	f.Fuzz(func(t *testing.T, url1 string, crl1 []byte, url2 string, crl2 []byte) {
		res, err := Check(chain, []Entry{{url1, crl1}, {url2, crl2}}, Options{})
		if err != nil {
			return
		}
		checkAccepted(t, chain, res)
		_ = res.CheckTime(t0)
	})
}
