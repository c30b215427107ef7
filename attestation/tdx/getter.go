package tdx

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// getter serves the evidence's collateral to go-tdx-guest as if it were
// Intel PCS, offline. It implements go-tdx-guest's trust.HTTPSGetter.
type getter struct {
	ev                 *envelope.TdxEvidence
	tcbChain, qeChain  string // URL-escaped PEM issuer chains, as PCS sends them
	pckCRLChain        string
	intermediate, root *x509.Certificate
	// The TCB Info and QE Identity documents as stage 1 checked them:
	// the signed body and signature only (signedDoc).
	tcbInfo, qeIdentity []byte
}

func pemChain(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return url.QueryEscape(b.String())
}

// newGetter serves ev's collateral, parsed as c. The PCK CRL's issuer
// chain is the quote's [intermediate, root].
func newGetter(ev *envelope.TdxEvidence, c *collateral) *getter {
	return &getter{
		ev:           ev,
		tcbChain:     pemChain(c.tcbChain[:]...),
		qeChain:      pemChain(c.qeChain[:]...),
		pckCRLChain:  pemChain(c.pck[1], c.pck[2]),
		intermediate: c.pck[1],
		root:         c.pck[2],
		tcbInfo:      signedDoc("tcbInfo", c.tcbInfoRaw, c.tcbSignature),
		qeIdentity:   signedDoc("enclaveIdentity", c.qeIdentRaw, c.qeSignature),
	}
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
		return map[string][]string{"Tcb-Info-Issuer-Chain": {g.tcbChain}}, g.tcbInfo, nil
	case u == pcs.QeIdentityURL():
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {g.qeChain}}, g.qeIdentity, nil
	case strings.Contains(u, "/pckcrl?"):
		b, err := g.crl(u, g.intermediate)
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": {g.pckCRLChain}}, b, err
	default: // the root CA CRL, named by the collateral root's CRL DP
		b, err := g.crl(u, g.root)
		return nil, b, err
	}
}
