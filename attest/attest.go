// Package attest holds the small vocabulary that the Keep (which produces
// evidence) and the Steward (which verifies it) share: TEE kinds, the
// certificate-request extension OIDs, the rule that binds a Keep's public key
// into hardware report data, and the interfaces that evidence providers and
// verifiers implement.
//
// Nothing in this package trusts its input; it only names things. Decoding,
// signature verification and policy live in the packages under attestation/.
package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// Kind names a trusted execution environment technology.
type Kind string

const (
	// KindNone is "no hardware": the nil and sandbox backends. Upstream calls
	// its evidence "KVM" evidence (an empty extension value).
	KindNone Kind = "none"
	KindSGX  Kind = "sgx"
	KindSNP  Kind = "snp"
	KindTDX  Kind = "tdx"
)

// Object identifiers under Enarx's private enterprise arc 1.3.6.1.4.1.58270.1.
//
// .1 to .3 are upstream's evidence OIDs (wire-compatible). The rest are ours
// and are documented in the README ("Certificate extensions").
var (
	// OIDExtensionRequest is the PKCS#9 extensionRequest CSR attribute.
	OIDExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}

	// OIDEvidenceKVM marks evidence from a Keep without TEE hardware (upstream
	// "KVM"): an empty value, accepted only by a Steward in debug mode or with
	// an explicit policy switch.
	OIDEvidenceKVM = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 1}
	// OIDEvidenceSGX carries DER SgxEvidence (DCAP quote v3 + collateral).
	OIDEvidenceSGX = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 2}
	// OIDEvidenceSNP carries DER SnpEvidence (report + VCEK + CRLs).
	OIDEvidenceSNP = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 3}
	// OIDEvidenceTDX carries DER TdxEvidence (quote v4 + collateral; v5 is
	// refused until go-tdx-guest parses it).
	// Not defined upstream; allocated by this project.
	OIDEvidenceTDX = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 4}

	// OIDWorkload carries the workload identity: the digests of what the Keep
	// runs. Requested in the CSR and copied by the Steward into the issued
	// certificate. Allocated by this project.
	OIDWorkload = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 16}
	// OIDAttestedAs records, in an issued certificate, what the Steward
	// verified (TEE kind, measurement, debug, hardware-backed, TCB status).
	// Only the Steward writes it; a CSR that asks for it is rejected.
	// Allocated by this project.
	OIDAttestedAs = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1, 17}
)

// EvidenceOID returns the CSR extension OID that carries evidence of kind k.
func EvidenceOID(k Kind) (asn1.ObjectIdentifier, error) {
	switch k {
	case KindNone:
		return OIDEvidenceKVM, nil
	case KindSGX:
		return OIDEvidenceSGX, nil
	case KindSNP:
		return OIDEvidenceSNP, nil
	case KindTDX:
		return OIDEvidenceTDX, nil
	}
	return nil, fmt.Errorf("unknown TEE kind %q", k)
}

// ReportData is the single place that defines how a Keep's public key is bound
// into the 64 bytes of user data that TEE hardware signs:
//
//	SNP, TDX: SHA-384(DER SubjectPublicKeyInfo) followed by 16 zero bytes
//	SGX, none: SHA-256(DER SubjectPublicKeyInfo) followed by 32 zero bytes
//
// SNP and SGX follow upstream Enarx and Steward exactly. TDX is ours: it uses
// SHA-384 like SNP, because TDX measurements are SHA-384 and the Keep key is
// P-384 there as well.
func ReportData(k Kind, spkiDER []byte) [64]byte {
	var out [64]byte
	switch k {
	case KindSNP, KindTDX:
		h := sha512.Sum384(spkiDER)
		copy(out[:], h[:])
	default:
		h := sha256.Sum256(spkiDER)
		copy(out[:], h[:])
	}
	return out
}

// workloadBindingDomain separates the workload binding from any other use
// of SHA-256 over the same bytes.
const workloadBindingDomain = "enarx workload binding v1\x00"

// WorkloadBinding is what a Keep puts after the key binding in its report
// data: SHA-256 over a domain string and the DER value of the CSR's
// workload-identity extension (OIDWorkload), cut to the space left (16
// bytes for SNP and TDX, 32 for SGX and none). The hardware report then
// names the workload directly, so one launch measurement serves every
// workload and the evidence alone says which one a Keep ran. The CSR's
// signature by the bound key carries the same statement at full strength.
func WorkloadBinding(workloadDER []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(workloadBindingDomain))
	h.Write(workloadDER)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ReportDataWithWorkload is ReportData with the space after the key binding
// holding WorkloadBinding(workloadDER) (as much as fits). Upstream Stewards
// do not check that space, so they accept it unchanged.
func ReportDataWithWorkload(k Kind, spkiDER, workloadDER []byte) [64]byte {
	out := ReportData(k, spkiDER)
	b := WorkloadBinding(workloadDER)
	copy(out[ReportDataLen(k):], b[:])
	return out
}

// ErrWorkloadBinding is returned by CheckWorkloadBinding when the report
// data names a workload other than the CSR's.
var ErrWorkloadBinding = errors.New("the report data names another workload than the request")

// CheckWorkloadBinding looks at the report data after the key binding.
// All zeros (upstream Keeps, older Keeps) binds nothing: bound is false.
// WorkloadBinding of the CSR's workload extension value binds it: bound is
// true. Anything else — including a binding when the CSR has no workload
// extension (workloadDER nil) — is ErrWorkloadBinding.
func CheckWorkloadBinding(k Kind, reportData, workloadDER []byte) (bound bool, err error) {
	n := ReportDataLen(k)
	if len(reportData) < n {
		return false, fmt.Errorf("report data of %d bytes is shorter than its key binding", len(reportData))
	}
	tail := reportData[n:]
	zero := true
	for _, b := range tail {
		if b != 0 {
			zero = false
			break
		}
	}
	if zero {
		return false, nil
	}
	if workloadDER == nil {
		return false, fmt.Errorf("%w: the report binds a workload, the request names none", ErrWorkloadBinding)
	}
	want := WorkloadBinding(workloadDER)
	if len(tail) > len(want) || !bytes.Equal(tail, want[:len(tail)]) {
		return false, ErrWorkloadBinding
	}
	return true, nil
}

// ReportDataLen is how many leading bytes of the report data ReportData
// fills; a verifier compares exactly these (upstream does not check the
// zero padding, and neither must we, to stay compatible).
func ReportDataLen(k Kind) int {
	switch k {
	case KindSNP, KindTDX:
		return sha512.Size384
	default:
		return sha256.Size
	}
}

// EvidenceProvider produces hardware evidence inside a Keep. Each backend
// supplies one; the nil and sandbox backends supply KindNone (empty evidence).
type EvidenceProvider interface {
	// Kind is the TEE technology; it also fixes the Keep key's curve
	// (P-384 for SNP and TDX, P-256 otherwise) and the ReportData rule.
	Kind() Kind
	// Evidence returns the DER value of the CSR evidence extension with
	// reportData (see ReportData) bound into the signed hardware report.
	Evidence(ctx context.Context, reportData [64]byte) ([]byte, error)
}

// VerifyRequest is one evidence extension to verify, taken from a CSR whose
// self-signature the Steward has already checked.
type VerifyRequest struct {
	// CSR is the parsed request; CSR.RawSubjectPublicKeyInfo is what the
	// evidence must bind (see ReportData).
	CSR *x509.CertificateRequest
	// Extension is the evidence extension (OID, criticality, value).
	Extension pkix.Extension
	// Now is the verification clock (pinnable for replaying old evidence);
	// certificates, CRLs and TCB info are checked against it.
	Now time.Time
	// Debug is true when the Steward runs in upstream's debug mode (its CA
	// certificate is self-issued).
	Debug bool
}

// Claims is what a verifier established. The Steward records it in the issued
// certificate (OIDAttestedAs) so relying parties can check it.
type Claims struct {
	Kind Kind
	// HardwareBacked is false for no-hardware evidence and for evidence
	// signed by an emulated (test) root that a policy explicitly trusted.
	HardwareBacked bool
	// Debug is true when the TEE runs in debug mode (secrets readable by the
	// host) or the Steward accepted it in debug mode.
	Debug bool
	// Measurement is the launch measurement: SNP MEASUREMENT, SGX MRENCLAVE,
	// TDX MRTD. Empty for KindNone.
	Measurement []byte
	// Signer is the SNP AUTHOR_KEY_DIGEST (or ID_KEY_DIGEST), SGX MRSIGNER,
	// or TDX MRSIGNERSEAM/MRSEAM, when present.
	Signer []byte
	// TCBStatus is e.g. "UpToDate", "OutOfDate" (SGX/TDX) or the reported
	// TCB version for SNP, when the verifier knows it.
	TCBStatus string
	// Advisories are the TCB advisories the policy allowed (SGX/TDX).
	Advisories []string
	// ReportData is the 64 bytes of user data the hardware signed (nil
	// for KindNone): the key binding (checked by the verifier) and the
	// workload binding (checked by the Steward, see CheckWorkloadBinding).
	ReportData []byte
	// WorkloadBound is set by the Steward when the report data names the
	// request's workload identity.
	WorkloadBound bool
}

// Verifier checks one kind of evidence and applies policy to it.
type Verifier interface {
	// OID is the CSR extension this verifier handles.
	OID() asn1.ObjectIdentifier
	// Verify returns the established claims, or an error. Errors should be
	// (or wrap) a *Rejection so the client gets a stable reason code.
	Verify(ctx context.Context, req *VerifyRequest) (*Claims, error)
}

// Rejection is a verification failure with a stable, short, machine-readable
// code (e.g. "snp.report.signature") and a human message. The Steward returns
// "code: message" in its 400 body and counts rejections by code.
type Rejection struct {
	Code string
	Msg  string
	Err  error // optional cause, not shown to clients
}

func (r *Rejection) Error() string {
	if r.Err != nil {
		return r.Code + ": " + r.Msg + ": " + r.Err.Error()
	}
	return r.Code + ": " + r.Msg
}

func (r *Rejection) Unwrap() error { return r.Err }

// Reject builds a *Rejection.
func Reject(code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// RejectErr builds a *Rejection that wraps cause.
func RejectErr(code string, cause error, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// AsRejection extracts the *Rejection from err, if any.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	if errors.As(err, &r) {
		return r, true
	}
	return nil, false
}
