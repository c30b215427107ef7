package snp

// Rejection codes. They are stable: clients and metrics depend on them.
const (
	CodeExtensionCritical       = "snp.extension.critical"        // the evidence extension is marked critical
	CodeEvidenceDecode          = "snp.evidence.decode"           // the SnpEvidence DER is malformed or truncated
	CodeEvidenceTooLarge        = "snp.evidence.too-large"        // the evidence exceeds the size limits
	CodeCSRKey                  = "snp.csr.key"                   // the CSR key is not ECDSA P-384
	CodeReportFormat            = "snp.report.format"             // reserved fields/bits or layout rejected by go-sev-guest abi
	CodeReportVersion           = "snp.report.version"            // VERSION outside the accepted range
	CodeReportSigningKey        = "snp.report.signing-key"        // not signed by a VCEK (VLEK is unsupported)
	CodeReportSignatureAlgo     = "snp.report.signature-algo"     // SIGNATURE_ALGO is not ECDSA P-384/SHA-384
	CodeReportSignature         = "snp.report.signature"          // the report signature does not verify with the VCEK
	CodeVCEKParse               = "snp.vcek.parse"                // the VCEK certificate does not parse
	CodeVCEKChain               = "snp.vcek.chain"                // the VCEK does not chain to a trusted AMD ARK/ASK
	CodeVCEKExpired             = "snp.vcek.expired"              // ARK, ASK or VCEK not valid at the verification time
	CodeCRLMissing              = "snp.crl.missing"               // no CRL from the ARK in the evidence
	CodeCRLParse                = "snp.crl.parse"                 // a CRL in the evidence does not parse
	CodeCRLSignature            = "snp.crl.signature"             // a CRL is not signed by a trusted ARK (the ARK of the chain, for the CRL it uses)
	CodeCRLRevoked              = "snp.crl.revoked"               // the ASK or VCEK is revoked
	CodeCRLExpired              = "snp.crl.expired"               // the CRL's nextUpdate is not after the verification time
	CodeCRLNotYetValid          = "snp.crl.not-yet-valid"         // the CRL's thisUpdate is after the verification time
	CodeReportVMPL              = "snp.report.vmpl"               // VMPL is not 0
	CodeReportMigrateMA         = "snp.report.migrate-ma"         // the guest policy allows a migration agent
	CodeReportZeroFields        = "snp.report.nonzero-field"      // FAMILY_ID, IMAGE_ID or HOST_DATA is not zero
	CodeReportABIFirmware       = "snp.report.abi-firmware"       // the guest's minimum ABI exceeds the firmware's
	CodeReportChipID            = "snp.report.chip-id"            // CHIP_ID differs from the VCEK hwID
	CodeTCBVCEKMismatch         = "snp.tcb.vcek-mismatch"         // REPORTED_TCB differs from the VCEK's TCB
	CodeTCBProvisional          = "snp.tcb.provisional"           // committed TCB/firmware differs from current
	CodeTCBMinimum              = "snp.tcb.minimum"               // REPORTED_TCB below the policy minimum
	CodeTCBLaunchMinimum        = "snp.tcb.launch-minimum"        // LAUNCH_TCB below the policy minimum (minimum_launch_tcb, by default minimum_tcb)
	CodeReportValidate          = "snp.report.validate"           // go-sev-guest validate rejects the report
	CodeBinding                 = "snp.binding"                   // REPORT_DATA does not bind the CSR key
	CodePolicyDebug             = "snp.policy.debug"              // the guest policy allows debugging
	CodePolicyGuestSVN          = "snp.policy.guest-svn"          // GUEST_SVN below the policy minimum
	CodePolicyABI               = "snp.policy.abi"                // the guest ABI does not match `abi`
	CodePolicySigner            = "snp.policy.signer"             // AUTHOR_KEY_DIGEST not in `signer`
	CodePolicyIDKey             = "snp.policy.id-key"             // ID_KEY_DIGEST not in `id_key_digest`
	CodePolicyIDKeyDenied       = "snp.policy.id-key-denied"      // ID_KEY_DIGEST in `id_key_digest_blacklist`
	CodePolicyMeasurement       = "snp.policy.measurement"        // MEASUREMENT not in `hash`
	CodePolicyMeasurementDenied = "snp.policy.measurement-denied" // MEASUREMENT in `hash_blacklist`
	CodePolicyPlatformInfo      = "snp.policy.platform-info"      // PLATFORM_INFO differs from `platform_info_flags`
	CodePolicyFlags             = "snp.policy.flags"              // guest policy bits differ from `policy_flags`
)
