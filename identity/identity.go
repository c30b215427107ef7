// Package identity gives a Keep its TLS identity: a key generated inside the
// Keep, a PKCS#10 certificate request that carries the TEE evidence and the
// workload identity, a certificate chain (issued by a Steward, or self-signed
// when none is configured) and the crypto/tls configurations that terminate
// TLS inside the Keep for Enarx.toml entries with prot = "tls".
//
// What it trusts: the EvidenceProvider (it runs inside the Keep) and, for a
// Steward over https, the embedded Mozilla root set (never the host's system
// roots: the host file system is untrusted). The Steward's reply is untrusted
// input: it is parsed defensively, its leaf must carry this Keep's public key
// and the chain must verify. The private key never leaves this package: the
// tls.Certificate it hands out holds an opaque crypto.Signer, and nothing here
// logs key material.
package identity

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

// Request describes the identity a Keep asks for.
type Request struct {
	// Evidence produces the TEE evidence; nil means none (upstream "KVM"
	// evidence: an empty extension value).
	Evidence attest.EvidenceProvider
	// Steward is the Enarx.toml steward URL; "" means a self-signed
	// certificate.
	Steward string
	// AllowInsecureSteward permits an http:// Steward URL. Without it only
	// https is accepted, as upstream.
	AllowInsecureSteward bool
	// Workload is the identity of what the Keep runs (digests of the wasm
	// module, of Enarx.toml and, for registry deployments, of the package).
	// WasmSHA256 is required.
	Workload certext.Workload
	// StewardCA is inline PEM trust anchors for the Steward's HTTPS
	// certificate, used instead of the embedded Mozilla roots (for a
	// private or local Steward). It belongs in the measured Enarx.toml, not
	// in a host file. Mutually exclusive with HTTPClient.
	StewardCA string
	// HTTPClient talks to the Steward (tests pass one). Nil means a client
	// that trusts only StewardCA, or else the embedded Mozilla roots, and
	// ignores the host's proxy settings. Whichever client is used, each
	// attempt is bounded by a timeout and redirects are not followed.
	HTTPClient *http.Client
	// Dial, if set, makes every connection to the Steward, whatever its
	// address: a Keep without a network of its own (sandbox, microVM) has
	// its host connect for it. The host can then only relay: TLS to the
	// Steward still ends inside the Keep. Mutually exclusive with
	// HTTPClient.
	Dial func(ctx context.Context) (net.Conn, error)
	// Logger receives progress messages (never key material); nil discards.
	Logger *slog.Logger
}

// Identity is a Keep's key and certificate chain.
type Identity struct {
	kind   attest.Kind
	signer *keySigner
	// chain is leaf-first: chain[0] is the Keep certificate.
	chain []*x509.Certificate
	// stewardCA is the root of the Steward's reply (nil when self-signed).
	stewardCA *x509.Certificate
	// csr is the DER certificate request (nil when self-signed; no evidence
	// is gathered then).
	csr []byte
}

// Establish generates the Keep key and obtains a certificate chain for it:
// from req.Steward when set, otherwise a self-signed certificate.
func Establish(ctx context.Context, req Request) (*Identity, error) {
	log := req.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := req.Workload.Marshal(); err != nil {
		return nil, fmt.Errorf("keep identity: %w", err)
	}
	kind := attest.KindNone
	if req.Evidence != nil {
		kind = req.Evidence.Kind()
		if _, err := attest.EvidenceOID(kind); err != nil {
			return nil, fmt.Errorf("keep identity: evidence provider: %w", err)
		}
	}
	if req.StewardCA != "" && req.HTTPClient != nil {
		return nil, errors.New("keep identity: give either a steward CA or an HTTP client, not both")
	}
	if req.Dial != nil && req.HTTPClient != nil {
		return nil, errors.New("keep identity: give either a dial function or an HTTP client, not both")
	}
	// Check the Steward settings before doing any expensive or hardware
	// work.
	var ep *stewardEndpoint
	roots := mozillaRoots()
	if req.Steward != "" {
		var err error
		if ep, err = parseStewardURL(req.Steward, req.AllowInsecureSteward); err != nil {
			return nil, fmt.Errorf("keep identity: %w", err)
		}
		if req.StewardCA != "" {
			if roots, err = parsePEMPool(req.StewardCA); err != nil {
				return nil, fmt.Errorf("keep identity: steward CA: %w", err)
			}
		}
	}

	signer, err := newKeySigner(kind)
	if err != nil {
		return nil, fmt.Errorf("keep identity: %w", err)
	}
	id := &Identity{kind: kind, signer: signer}

	if ep == nil {
		cert, err := selfSigned(signer)
		if err != nil {
			return nil, fmt.Errorf("keep identity: self-signed certificate: %w", err)
		}
		id.chain = []*x509.Certificate{cert}
		log.Info("keep identity: self-signed certificate (no steward configured)",
			"tee", string(kind), "key", signer.curveName())
		return id, nil
	}

	wext, err := req.Workload.Extension()
	if err != nil {
		return nil, fmt.Errorf("keep identity: workload identity: %w", err)
	}
	evidence, err := gatherEvidence(ctx, req.Evidence, kind, signer, wext.Value)
	if err != nil {
		return nil, fmt.Errorf("keep identity: %w", err)
	}
	csr, err := createCSR(signer, kind, evidence, &req.Workload)
	if err != nil {
		return nil, fmt.Errorf("keep identity: certificate request: %w", err)
	}

	c := newStewardClient(ep, req.HTTPClient, req.Dial, roots, log)
	chain, err := c.issue(ctx, csr)
	if silentBadRequest(err) {
		// Probably an upstream Steward, which refuses the (unknown to it)
		// workload identity extension without saying why. Ask once more
		// with exactly upstream's CSR; the certificate then does not name
		// the workload, and the warning below says so.
		log.Warn("keep identity: steward refused the request without a reason (an upstream steward?); retrying without the workload identity extension",
			"steward", ep.display)
		if csr, err = createCSR(signer, kind, evidence, nil); err != nil {
			return nil, fmt.Errorf("keep identity: certificate request: %w", err)
		}
		chain, err = c.issue(ctx, csr)
	}
	if err != nil {
		return nil, fmt.Errorf("keep identity: %w", err)
	}
	id.csr = csr
	copied, err := checkIssued(chain, signer, &req.Workload)
	if err != nil {
		return nil, fmt.Errorf("keep identity: steward %s returned an unusable chain: %w", ep.display, err)
	}
	if !copied {
		log.Warn("keep identity: the steward did not copy the workload identity into the certificate (an upstream steward?); relying parties cannot check which workload runs",
			"steward", ep.display)
	}
	id.chain = chain
	id.stewardCA = chain[len(chain)-1]
	log.Info("keep identity: certificate issued by steward",
		"steward", ep.display, "tee", string(kind), "key", signer.curveName(),
		"issuer", chain[0].Issuer.String(), "serial", chain[0].SerialNumber.Text(16),
		"not_after", chain[0].NotAfter)
	return id, nil
}

// gatherEvidence asks the provider for evidence bound to the Keep key and
// to the workload identity (workloadDER, the extension value the CSR
// carries; see attest.ReportDataWithWorkload).
func gatherEvidence(ctx context.Context, p attest.EvidenceProvider, kind attest.Kind, s *keySigner, workloadDER []byte) ([]byte, error) {
	if p == nil {
		return []byte{}, nil
	}
	rd := attest.ReportDataWithWorkload(kind, s.spki, workloadDER)
	ev, err := p.Evidence(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("gathering %s evidence: %w", kind, err)
	}
	if kind == attest.KindNone && len(ev) != 0 {
		// A Steward rejects a non-empty KVM extension; fail here, clearly.
		return nil, errors.New("evidence provider of kind \"none\" returned non-empty evidence")
	}
	if ev == nil {
		ev = []byte{}
	}
	return ev, nil
}

// Kind is the TEE kind whose evidence the identity was requested with.
func (id *Identity) Kind() attest.Kind { return id.kind }

// Chain returns the certificate chain, leaf first. For a Steward-issued
// identity the last element is the Steward CA certificate.
func (id *Identity) Chain() []*x509.Certificate {
	return append([]*x509.Certificate(nil), id.chain...)
}

// StewardCA returns the root of the Steward's reply, or nil for a
// self-signed identity.
func (id *Identity) StewardCA() *x509.Certificate { return id.stewardCA }

// CSR returns the DER certificate request sent to the Steward, or nil for a
// self-signed identity.
func (id *Identity) CSR() []byte { return append([]byte(nil), id.csr...) }

// PublicKey returns the Keep's public key.
func (id *Identity) PublicKey() crypto.PublicKey { return id.signer.Public() }

// Certificate returns the chain (leaf first) with the Keep's key, for
// crypto/tls. The key is an opaque crypto.Signer: the private key cannot be
// read from it.
func (id *Identity) Certificate() tls.Certificate {
	der := make([][]byte, len(id.chain))
	for i, c := range id.chain {
		der[i] = c.Raw
	}
	return tls.Certificate{Certificate: der, PrivateKey: id.signer, Leaf: id.chain[0]}
}
