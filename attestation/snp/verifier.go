// Package snp verifies AMD SEV-SNP evidence (upstream Enarx's SnpEvidence:
// an ATTESTATION_REPORT, the VCEK that signed it and AMD's CRLs) and applies
// the `[snp]` policy.
//
// It trusts only the AMD ARK/ASK pairs it is given (by default AMD's Milan,
// Genoa and Turin roots embedded in github.com/google/go-sev-guest) and the
// verification clock in the request. Everything in the evidence is
// untrusted: the VCEK must chain to a trusted root, the CRL must be signed by
// the ARK and current, and the report must be signed by the VCEK. It never
// uses the network.
//
// The split follows go-sev-guest: abi decodes the report, verify checks the
// chain and signature, validate checks fields; this package adds upstream
// Steward's structural rules, the checks upstream misses (REPORTED_TCB vs
// VCEK TCB, CHIP_ID vs hwID, minimum REPORTED_TCB, LAUNCH_TCB and guest
// SVN, policy_flags), the key binding and the policy. Revocation is checked
// with attestation/crl (the ARK's CRL is required), and verified chains are
// cached by their bytes (attestation/internal/cache).
package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/internal/cache"
)

// Options configure a Verifier.
type Options struct {
	// Policy is the `[snp]` policy; nil applies only the structural rules
	// (upstream's behaviour without an `[snp]` table).
	Policy *Policy
	// Roots are the trusted AMD roots; nil means DefaultRoots().
	Roots []Root
	// CacheSize bounds the cache of verified VCEK chains; 0 means 1024.
	CacheSize int
}

// Verifier verifies SEV-SNP evidence. It is safe for concurrent use.
type Verifier struct {
	policy Policy
	roots  []Root
	chains *cache.Cache[*chainResult]
}

var _ attest.Verifier = (*Verifier)(nil)

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	roots := opts.Roots
	if roots == nil {
		var err error
		if roots, err = DefaultRoots(); err != nil {
			return nil, err
		}
	}
	for i, r := range roots {
		if r.ARK == nil || r.ASK == nil || r.ProductLine == "" {
			return nil, fmt.Errorf("snp: root %d is incomplete", i)
		}
	}
	v := &Verifier{roots: roots}
	if opts.Policy != nil {
		v.policy = *opts.Policy
	}
	if v.policy.MinReportVersion == 0 {
		v.policy.MinReportVersion = abi.MinSupportedReportVersion
	}
	if v.policy.MaxReportVersion == 0 {
		v.policy.MaxReportVersion = abi.MaxSupportedReportVersion
	}
	if v.policy.MinReportVersion < abi.MinSupportedReportVersion || v.policy.MaxReportVersion > abi.MaxSupportedReportVersion ||
		v.policy.MinReportVersion > v.policy.MaxReportVersion {
		return nil, fmt.Errorf("snp: report versions %d–%d are outside the supported %d–%d",
			v.policy.MinReportVersion, v.policy.MaxReportVersion, abi.MinSupportedReportVersion, abi.MaxSupportedReportVersion)
	}
	size := opts.CacheSize
	if size == 0 {
		size = 1024
	}
	v.chains = cache.New[*chainResult](size)
	return v, nil
}

// OID implements attest.Verifier.
func (v *Verifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceSNP }

// Verify implements attest.Verifier. Errors are *attest.Rejection.
func (v *Verifier) Verify(ctx context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil || req.CSR == nil {
		return nil, errors.New("snp: no request")
	}
	ev, report, signer, err := v.decode(req)
	if err != nil {
		return nil, err
	}
	// Chain (cached by its bytes) and clock. verifyChain also reads the
	// report (go-sev-guest's cross-check verifies its signature), but its
	// success depends only on the chain; the cache hands no caller another's
	// failure, and every caller checks its own report's signature below.
	chain, err := v.chains.Get(chainKey(ev), func() (*chainResult, error) { return verifyChain(ev, report, v.roots) })
	if err != nil {
		return nil, err
	}
	if err := chain.checkTime(req.Now); err != nil {
		return nil, err
	}
	if err := reportSignature(ev.Report, chain.vcek); err != nil {
		return nil, err
	}
	if err := v.checkReport(report, chain); err != nil {
		return nil, err
	}
	pol, _ := abi.ParseSnpPolicy(report.GetPolicy()) // parsed by ReportToProto already
	if !req.Debug {
		want := sha512.Sum384(req.CSR.RawSubjectPublicKeyInfo)
		if !bytes.Equal(report.GetReportData()[:attest.ReportDataLen(attest.KindSNP)], want[:]) {
			return nil, attest.Reject(CodeBinding, "REPORT_DATA does not start with SHA-384 of the CSR public key; the report was not made for this key")
		}
		if pol.Debug {
			return nil, attest.Reject(CodePolicyDebug, "the guest policy allows debugging (DEBUG bit set); the host can read guest memory")
		}
	}
	if err := v.checkPolicy(report, pol, signer); err != nil {
		return nil, err
	}
	return claimsOf(report, pol, signer, chain, req.Debug), nil
}

// decode checks the request's framing and key type, decodes the evidence
// and its report, and checks the report's version and signer.
func (v *Verifier) decode(req *attest.VerifyRequest) (*envelope.SnpEvidence, *spb.Report, abi.SignerInfo, error) {
	var none abi.SignerInfo
	if req.Extension.Critical {
		return nil, nil, none, attest.Reject(CodeExtensionCritical, "the SEV-SNP evidence extension must not be critical")
	}
	ev, err := envelope.DecodeSnpEvidence(req.Extension.Value)
	if err != nil {
		if errors.Is(err, envelope.ErrTooLarge) {
			return nil, nil, none, attest.RejectErr(CodeEvidenceTooLarge, err, "the SEV-SNP evidence is too large")
		}
		return nil, nil, none, attest.RejectErr(CodeEvidenceDecode, err, "the SEV-SNP evidence is malformed")
	}
	if pub, ok := req.CSR.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return nil, nil, none, attest.Reject(CodeCSRKey, "the CSR key must be ECDSA P-384 for SEV-SNP (like the VCEK)")
	}
	report, err := abi.ReportToProto(ev.Report)
	if err != nil {
		return nil, nil, none, attest.RejectErr(CodeReportFormat, err, "the SEV-SNP report is malformed")
	}
	if ver := report.GetVersion(); ver < v.policy.MinReportVersion || ver > v.policy.MaxReportVersion {
		return nil, nil, none, attest.Reject(CodeReportVersion, "report version %d is not accepted (policy: %d–%d)", ver, v.policy.MinReportVersion, v.policy.MaxReportVersion)
	}
	signer, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return nil, nil, none, attest.RejectErr(CodeReportFormat, err, "the report's signer info is malformed")
	}
	if signer.SigningKey != abi.VcekReportSigner {
		return nil, nil, none, attest.Reject(CodeReportSigningKey, "the report is signed by a %v, only VCEK-signed reports are supported", signer.SigningKey)
	}
	return ev, report, signer, nil
}

// claimsOf records what a verified report attests.
func claimsOf(report *spb.Report, pol abi.SnpPolicy, signer abi.SignerInfo, chain *chainResult, stewardDebug bool) *attest.Claims {
	claims := &attest.Claims{
		Kind:           attest.KindSNP,
		HardwareBacked: !chain.root.Emulated,
		// As attest.Claims says: a debug-mode Steward skipped the key
		// binding, so the record must not read as production.
		Debug:       pol.Debug || stewardDebug,
		Measurement: bytes.Clone(report.GetMeasurement()),
		TCBStatus:   tcbString(report.GetReportedTcb()),
		ReportData:  bytes.Clone(report.GetReportData()),
	}
	if signer.AuthorKeyEn {
		claims.Signer = bytes.Clone(report.GetAuthorKeyDigest())
	} else {
		claims.Signer = bytes.Clone(report.GetIdKeyDigest())
	}
	return claims
}

// tcbString renders a TCB_VERSION for the attested-as record.
func tcbString(tcb uint64) string {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(tcb))
	return fmt.Sprintf("tcb=%016x bl=%d tee=%d snp=%d ucode=%d", tcb, p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
}

// partsString renders a policy minimum in tcbString's terms.
func partsString(p kds.TCBParts) string {
	return fmt.Sprintf("bl=%d tee=%d snp=%d ucode=%d", p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
}

// tcbShortfall compares the TCB_VERSION tcb component-wise with want, like
// go-sev-guest's validate (kds.TCBPartsLE), and when tcb is lower names the
// first component that is too low, with the policy table's key.
func tcbShortfall(want kds.TCBParts, tcb uint64) (string, bool) {
	got := kds.DecomposeTCBVersion(kds.TCBVersion(tcb))
	if kds.TCBPartsLE(want, got) {
		return "", false
	}
	for _, c := range []struct {
		name      string
		want, got uint8
	}{
		{"bootloader", want.BlSpl, got.BlSpl},
		{"tee", want.TeeSpl, got.TeeSpl},
		{"snp", want.SnpSpl, got.SnpSpl},
		{"microcode", want.UcodeSpl, got.UcodeSpl},
	} {
		if c.got < c.want {
			return fmt.Sprintf("%s SPL %d is below %d", c.name, c.got, c.want), true
		}
	}
	// Only the Go API can set the reserved SPL bytes (Spl4–Spl7).
	return "a reserved SPL byte is below the minimum", true
}

var (
	zero16 = make([]byte, 16)
	zero32 = make([]byte, 32)
)

// checkReport applies upstream Steward's structural rules, the TCB and chip
// consistency checks upstream misses, and go-sev-guest's validate.
func (v *Verifier) checkReport(r *spb.Report, chain *chainResult) error {
	pol, err := abi.ParseSnpPolicy(r.GetPolicy())
	if err != nil {
		return attest.RejectErr(CodeReportFormat, err, "the guest policy is malformed")
	}
	if r.GetVmpl() != 0 {
		return attest.Reject(CodeReportVMPL, "VMPL is %d, want 0", r.GetVmpl())
	}
	if pol.MigrateMA {
		return attest.Reject(CodeReportMigrateMA, "the guest policy allows a migration agent (MIGRATE_MA)")
	}
	for name, f := range map[string][]byte{"FAMILY_ID": r.GetFamilyId(), "IMAGE_ID": r.GetImageId(), "HOST_DATA": r.GetHostData()} {
		if !allZero(f) {
			return attest.Reject(CodeReportZeroFields, "%s is %s, want zero", name, hex.EncodeToString(f))
		}
	}
	if uint16(pol.ABIMajor)<<8|uint16(pol.ABIMinor) > uint16(r.GetCurrentMajor())<<8|uint16(r.GetCurrentMinor()) {
		return attest.Reject(CodeReportABIFirmware, "the guest requires ABI %d.%d but the firmware is %d.%d",
			pol.ABIMajor, pol.ABIMinor, r.GetCurrentMajor(), r.GetCurrentMinor())
	}
	if chip := r.GetChipId(); !allZero(chip) && !bytes.Equal(chip, chain.exts.HWID) {
		return attest.Reject(CodeReportChipID, "CHIP_ID %s is not the VCEK's hwID %s", hex.EncodeToString(chip), hex.EncodeToString(chain.exts.HWID))
	}
	if r.GetReportedTcb() != uint64(chain.exts.TCBVersion) {
		return attest.Reject(CodeTCBVCEKMismatch, "REPORTED_TCB %016x is not the VCEK's TCB %016x; the host sent a VCEK for another TCB",
			r.GetReportedTcb(), uint64(chain.exts.TCBVersion))
	}
	p := &v.policy
	if !p.PermitProvisionalFirmware {
		if r.GetCommittedTcb() != r.GetCurrentTcb() || r.GetCommittedBuild() != r.GetCurrentBuild() ||
			r.GetCommittedMajor() != r.GetCurrentMajor() || r.GetCommittedMinor() != r.GetCurrentMinor() {
			return attest.Reject(CodeTCBProvisional, "the committed firmware/TCB differs from the current one (provisional firmware is not permitted)")
		}
	}
	if c, low := tcbShortfall(p.MinimumTCB, r.GetReportedTcb()); low {
		return attest.Reject(CodeTCBMinimum, "REPORTED_TCB %s is below the policy minimum %s: %s; update the platform firmware",
			tcbString(r.GetReportedTcb()), partsString(p.MinimumTCB), c)
	}
	if c, low := tcbShortfall(p.MinimumLaunchTCB, r.GetLaunchTcb()); low {
		return attest.Reject(CodeTCBLaunchMinimum, "LAUNCH_TCB %s is below the policy minimum launch TCB %s: %s; "+
			"the guest was launched while the platform ran older firmware (a later update raises REPORTED_TCB only), relaunch it",
			tcbString(r.GetLaunchTcb()), partsString(p.MinimumLaunchTCB), c)
	}
	if r.GetGuestSvn() < p.MinimumGuestSVN {
		return attest.Reject(CodePolicyGuestSVN, "GUEST_SVN %d is below the policy minimum %d", r.GetGuestSvn(), p.MinimumGuestSVN)
	}
	// go-sev-guest validate as the final word on what it knows.
	vmpl := 0
	err = validate.SnpAttestation(&spb.Attestation{Report: r, CertificateChain: &spb.CertificateChain{VcekCert: chain.vcek.Raw}},
		&validate.Options{
			GuestPolicy:               abi.SnpPolicy{SMT: true, Debug: true, SingleSocket: false},
			MinimumGuestSvn:           p.MinimumGuestSVN,
			MinimumTCB:                p.MinimumTCB,
			MinimumLaunchTCB:          p.MinimumLaunchTCB,
			PermitProvisionalFirmware: p.PermitProvisionalFirmware,
			VMPL:                      &vmpl,
			FamilyID:                  zero16,
			ImageID:                   zero16,
			HostData:                  zero32,
		})
	if err != nil {
		return attest.RejectErr(CodeReportValidate, err, "go-sev-guest rejects the report")
	}
	return nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func contains(list [][]byte, v []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, v) {
			return true
		}
	}
	return false
}

// checkPolicy applies the `[snp]` policy in upstream's order.
func (v *Verifier) checkPolicy(r *spb.Report, pol abi.SnpPolicy, signer abi.SignerInfo) error {
	p := &v.policy
	if p.ABI != nil {
		ver := semver.New(uint64(pol.ABIMajor), uint64(pol.ABIMinor), 0, "", "")
		if !p.ABI.Check(ver) {
			return attest.Reject(CodePolicyABI, "the guest ABI %d.%d does not satisfy abi %q", pol.ABIMajor, pol.ABIMinor, p.ABI.String())
		}
	}
	if len(p.Signers) > 0 {
		if !signer.AuthorKeyEn {
			return attest.Reject(CodePolicySigner, "the policy requires an author key but AUTHOR_KEY_EN is 0")
		}
		if !contains(p.Signers, r.GetAuthorKeyDigest()) {
			return attest.Reject(CodePolicySigner, "AUTHOR_KEY_DIGEST %s is not an allowed signer", hex.EncodeToString(r.GetAuthorKeyDigest()))
		}
	}
	if len(p.IDKeyDigests) > 0 && !contains(p.IDKeyDigests, r.GetIdKeyDigest()) {
		return attest.Reject(CodePolicyIDKey, "ID_KEY_DIGEST %s is not an allowed id_key_digest", hex.EncodeToString(r.GetIdKeyDigest()))
	}
	if contains(p.IDKeyDenylist, r.GetIdKeyDigest()) {
		return attest.Reject(CodePolicyIDKeyDenied, "ID_KEY_DIGEST %s is in id_key_digest_blacklist", hex.EncodeToString(r.GetIdKeyDigest()))
	}
	if len(p.Measurements) > 0 && !contains(p.Measurements, r.GetMeasurement()) {
		return attest.Reject(CodePolicyMeasurement, "MEASUREMENT %s is not an allowed hash", hex.EncodeToString(r.GetMeasurement()))
	}
	if contains(p.MeasurementDenylist, r.GetMeasurement()) {
		return attest.Reject(CodePolicyMeasurementDenied, "MEASUREMENT %s is in hash_blacklist", hex.EncodeToString(r.GetMeasurement()))
	}
	if p.PlatformInfo != nil && uint8(r.GetPlatformInfo()) != *p.PlatformInfo {
		return attest.Reject(CodePolicyPlatformInfo, "PLATFORM_INFO byte 0 is %#x, the policy requires %#x", uint8(r.GetPlatformInfo()), *p.PlatformInfo)
	}
	if f := p.Flags; f != nil {
		if got := (Flags{SMT: pol.SMT, Debug: pol.Debug, SingleSocket: pol.SingleSocket}); got != *f {
			return attest.Reject(CodePolicyFlags, "guest policy flags %+v differ from policy_flags %+v", got, *f)
		}
	}
	return nil
}
