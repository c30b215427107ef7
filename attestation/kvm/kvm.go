// Package kvm verifies upstream Enarx's "KVM" evidence (OID
// 1.3.6.1.4.1.58270.1.1): the marker a Keep sends when it runs without TEE
// hardware (the nil and sandbox backends). The evidence is empty, so there
// is nothing to check cryptographically; it proves nothing about the Keep.
//
// It trusts nothing: it accepts the marker only when the Steward runs in
// debug mode (its CA certificate is self-issued, as upstream) or when the
// operator explicitly allowed no-hardware evidence (Options). The claims it
// returns say so: KindNone, not hardware backed, debug.
package kvm

import (
	"context"
	"encoding/asn1"

	"github.com/enarx-go/enarx/attest"
)

// Stable rejection codes.
const (
	// CodeValue: the extension value is not empty.
	CodeValue = "kvm.value"
	// CodeCritical: the extension is marked critical.
	CodeCritical = "kvm.critical"
	// CodeNotAllowed: no-hardware evidence outside debug mode without the
	// explicit policy switch.
	CodeNotAllowed = "kvm.not-allowed"
)

// Options configure the verifier. The zero value is upstream's behaviour:
// accept only in debug mode.
type Options struct {
	// AllowWithoutDebug accepts no-hardware evidence even when the Steward
	// is not in debug mode. Certificates issued this way still say
	// "not hardware backed" in their attested-as extension.
	AllowWithoutDebug bool
}

// Verifier implements attest.Verifier for KVM/none evidence.
type Verifier struct {
	opts Options
}

// New returns a verifier with the given options.
func New(opts Options) *Verifier { return &Verifier{opts: opts} }

// OID returns attest.OIDEvidenceKVM.
func (v *Verifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceKVM }

// Verify accepts an empty, non-critical extension in debug mode or when
// Options.AllowWithoutDebug is set.
func (v *Verifier) Verify(_ context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	if req.Extension.Critical {
		return nil, attest.Reject(CodeCritical, "the no-hardware (KVM) evidence extension must not be critical")
	}
	if n := len(req.Extension.Value); n != 0 {
		return nil, attest.Reject(CodeValue, "the no-hardware (KVM) evidence extension must be empty, got %d bytes", n)
	}
	if !req.Debug && !v.opts.AllowWithoutDebug {
		return nil, attest.Reject(CodeNotAllowed,
			"no-hardware (KVM) evidence is accepted only by a steward in debug mode (self-issued CA) or with no-hardware evidence explicitly allowed by policy")
	}
	// Without hardware the host can read everything the Keep holds, which
	// is what Debug means for a TEE.
	return &attest.Claims{Kind: attest.KindNone, HardwareBacked: false, Debug: true}, nil
}
