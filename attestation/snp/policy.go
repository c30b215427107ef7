package snp

import (
	"github.com/Masterminds/semver/v3"
	"github.com/google/go-sev-guest/kds"
)

// Policy is the validated `[snp]` policy (see attestation/policy for the
// TOML form). The zero value checks nothing beyond the structural rules.
type Policy struct {
	// Signers is the AUTHOR_KEY_DIGEST allow-list (48-byte digests); when
	// non-empty the report must also have AUTHOR_KEY_EN set.
	Signers [][]byte
	// Measurements is the MEASUREMENT allow-list; MeasurementDenylist the
	// deny-list.
	Measurements, MeasurementDenylist [][]byte
	// IDKeyDigests is the ID_KEY_DIGEST allow-list; IDKeyDenylist the deny-list.
	IDKeyDigests, IDKeyDenylist [][]byte
	// ABI, when set, must match the guest policy's minimum ABI
	// (major.minor.0), as upstream's `abi` semver requirement.
	ABI *semver.Constraints
	// Flags, when set, must equal the guest policy's SMT, DEBUG and
	// SINGLE_SOCKET bits exactly (upstream parses `policy_flags` but never
	// enforces it; we do).
	Flags *Flags
	// PlatformInfo, when set, must equal PLATFORM_INFO byte 0 (upstream's
	// `platform_info_flags`: "SME" = 1 (SMT_EN), "TSME" = 2).
	PlatformInfo *uint8
	// MinReportVersion and MaxReportVersion bound the report VERSION; zero
	// means 2 and 5 (everything go-sev-guest understands).
	MinReportVersion, MaxReportVersion uint32
	// MinimumTCB is compared component-wise with REPORTED_TCB.
	MinimumTCB kds.TCBParts
	// MinimumLaunchTCB is compared component-wise with LAUNCH_TCB, the TCB
	// the platform ran when the guest was launched. It stays at that level
	// when the host later raises REPORTED_TCB (a firmware hot update or
	// SNP_SET_CONFIG), so a guest launched under vulnerable firmware, and
	// the secrets it derived then, still show here. Zero checks nothing;
	// attestation/policy sets it to MinimumTCB when the file has no
	// `minimum_launch_tcb` (stricter than upstream, which checks neither).
	MinimumLaunchTCB kds.TCBParts
	// MinimumGuestSVN is compared with GUEST_SVN.
	MinimumGuestSVN uint32
	// PermitProvisionalFirmware accepts a committed TCB/firmware lower than
	// the current one (otherwise they must be equal).
	PermitProvisionalFirmware bool
}

// Flags are the guest policy bits an operator can pin.
type Flags struct {
	SMT, Debug, SingleSocket bool
}
