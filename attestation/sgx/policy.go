package sgx

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/enarx-go/enarx/attestation/sgx/quote"
	"github.com/enarx-go/enarx/attestation/sgx/tcbinfo"
)

// Policy is the [sgx] table of the Steward policy file. Keys and meaning
// follow upstream Steward (crates/attestation/src/sgx/config.rs):
//
//	[sgx]
//	signer = ["<64 hex>"]                  # MRSIGNER allow-list
//	hash = ["<64 hex>"]                    # MRENCLAVE allow-list
//	hash_blacklist = ["<64 hex>"]          # MRENCLAVE deny-list
//	features = ["Debug", "ProvisioningKey", "EInitKey", "KSS", "CET"]
//	misc_select = ["EXINFO"]
//	enclave_security_version = 0           # minimum ISVSVN
//	enclave_product_id = 0                 # exact ISVPRODID
//	allowed_advisories = ["INTEL-SA-00615"]
//	min_tcb_evaluation_data_number = 17    # ours: TCB Info and QE Identity
//	min_qe_svn = 8                         # ours: the Quoting Enclave's ISVSVN
//
// The deliberate differences: when features is absent upstream checks no
// attributes at all, so debug enclaves pass; here a debug enclave passes
// only if features lists "Debug". And min_tcb_evaluation_data_number and
// min_qe_svn are ours (upstream has no such minimums).
type Policy struct {
	// Signer lists accepted MRSIGNER values (hex); empty means any.
	Signer []string `toml:"signer" json:"signer,omitempty"`
	// Hash lists accepted MRENCLAVE values (hex); empty means any.
	Hash []string `toml:"hash" json:"hash,omitempty"`
	// HashBlacklist lists rejected MRENCLAVE values (hex).
	HashBlacklist []string `toml:"hash_blacklist" json:"hash_blacklist,omitempty"`
	// Features, when present, lists the enclave attributes allowed besides
	// INIT and MODE64BIT: "CET", "Debug", "EInitKey", "KSS",
	// "ProvisioningKey". Absent (nil): only non-debug enclaves pass.
	Features *[]string `toml:"features" json:"features,omitempty"`
	// MiscSelect, when non-empty, lists the MISCSELECT bits allowed: "EXINFO".
	MiscSelect []string `toml:"misc_select" json:"misc_select,omitempty"`
	// EnclaveSecurityVersion is the minimum ISVSVN (0–65535).
	EnclaveSecurityVersion *int `toml:"enclave_security_version" json:"enclave_security_version,omitempty"`
	// EnclaveProductID is the required ISVPRODID (0–65535).
	EnclaveProductID *int `toml:"enclave_product_id" json:"enclave_product_id,omitempty"`
	// AllowedAdvisories: if non-empty, the platform's TCB level is accepted
	// whatever its status as long as every Intel advisory listed for that
	// level is in this list (upstream's rule). If empty, the TCB status must
	// be UpToDate.
	AllowedAdvisories []string `toml:"allowed_advisories" json:"allowed_advisories,omitempty"`
	// MinTCBEvaluationDataNumber, when set, is the lowest
	// tcbEvaluationDataNumber accepted in the TCB Info and in the QE
	// Identity (0–4294967295). Intel raises the number with each TCB
	// Recovery; without a minimum, a host can send older collateral that
	// has not expired yet and still rates its platform by the levels from
	// before the recovery. Absent: any number (upstream).
	MinTCBEvaluationDataNumber *int64 `toml:"min_tcb_evaluation_data_number" json:"min_tcb_evaluation_data_number,omitempty"`
	// MinQESVN, when set, is the lowest ISVSVN of the Quoting Enclave
	// accepted (0–65535; below the built-in MinQESVN it changes nothing),
	// read from the QE's report, which the platform's PCK signs, whether
	// or not the evidence carries a QE Identity. The QE Identity (which
	// rates the QE by its ISVSVN) is the sender's to include: without
	// this minimum, evidence that leaves it out passes with any QE from
	// MinQESVN on, an older QE on an up-to-date platform included.
	MinQESVN *int `toml:"min_qe_svn" json:"min_qe_svn,omitempty"`
}

var featureBits = map[string]uint64{
	"CET":             quote.AttrCET,
	"Debug":           quote.AttrDebug,
	"EInitKey":        quote.AttrEInitTokenKey,
	"KSS":             quote.AttrKSS,
	"ProvisioningKey": quote.AttrProvisionKey,
}

var miscSelectBits = map[string]uint32{
	"EXINFO": quote.MiscSelectEXINFO,
}

// Validate checks the table like upstream does when loading it. Errors name
// the offending key as sgx.<key>.
func (p *Policy) Validate() error {
	_, err := p.compile()
	return err
}

// compiled is a validated Policy in the form the verifier uses.
type compiled struct {
	signers, hashes, denied [][32]byte
	// features is nil when the key is absent.
	features      *uint64
	miscSelect    uint32
	checkMisc     bool
	minSVN        *uint16
	productID     *uint16
	advisories    []string
	advisoriesSet map[string]bool
	// minEvalNumber is the minimum tcbEvaluationDataNumber (0: any).
	minEvalNumber int64
	// minQESVN is the minimum ISVSVN of the QE's report, at least
	// MinQESVN.
	minQESVN uint16
}

func digests(key string, in []string) ([][32]byte, error) {
	out := make([][32]byte, 0, len(in))
	for i, s := range in {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("sgx.%s[%d]: %q is not a SHA-256 digest (64 hex digits)", key, i, s)
		}
		out = append(out, [32]byte(b))
	}
	return out, nil
}

func u16(key string, v *int) (*uint16, error) {
	if v == nil {
		return nil, nil
	}
	if *v < 0 || *v > 0xffff {
		return nil, fmt.Errorf("sgx.%s: %d is outside 0–65535", key, *v)
	}
	u := uint16(*v)
	return &u, nil
}

func (p *Policy) compile() (*compiled, error) {
	if p == nil {
		// No [sgx] table: any enclave on an UpToDate platform, no debug.
		return &compiled{minQESVN: MinQESVN}, nil
	}
	c := &compiled{minQESVN: MinQESVN}
	var err error
	if c.signers, err = digests("signer", p.Signer); err != nil {
		return nil, err
	}
	if c.hashes, err = digests("hash", p.Hash); err != nil {
		return nil, err
	}
	if c.denied, err = digests("hash_blacklist", p.HashBlacklist); err != nil {
		return nil, err
	}
	if len(c.signers)+len(c.hashes)+len(c.denied) == 0 {
		return nil, fmt.Errorf("sgx: at least one of signer, hash or hash_blacklist must be set")
	}
	for _, d := range c.denied {
		if slices.Contains(c.hashes, d) {
			return nil, fmt.Errorf("sgx.hash_blacklist: %x is also listed in sgx.hash", d)
		}
	}
	if p.Features != nil {
		var f uint64
		for i, name := range *p.Features {
			bit, ok := featureBits[name]
			if !ok {
				return nil, fmt.Errorf("sgx.features[%d]: unknown feature %q (want one of CET, Debug, EInitKey, KSS, ProvisioningKey)", i, name)
			}
			f |= bit
		}
		c.features = &f
	}
	for i, name := range p.MiscSelect {
		bit, ok := miscSelectBits[name]
		if !ok {
			return nil, fmt.Errorf("sgx.misc_select[%d]: unknown MISCSELECT bit %q (want EXINFO)", i, name)
		}
		c.miscSelect |= bit
		c.checkMisc = true
	}
	if c.minSVN, err = u16("enclave_security_version", p.EnclaveSecurityVersion); err != nil {
		return nil, err
	}
	if c.productID, err = u16("enclave_product_id", p.EnclaveProductID); err != nil {
		return nil, err
	}
	c.advisoriesSet = make(map[string]bool, len(p.AllowedAdvisories))
	for i, a := range p.AllowedAdvisories {
		if strings.TrimSpace(a) == "" {
			return nil, fmt.Errorf("sgx.allowed_advisories[%d]: empty advisory ID", i)
		}
		c.advisoriesSet[a] = true
	}
	c.advisories = slices.Clone(p.AllowedAdvisories)
	if n := p.MinTCBEvaluationDataNumber; n != nil {
		if *n < 0 || *n > 1<<32-1 {
			return nil, fmt.Errorf("sgx.min_tcb_evaluation_data_number: %d is outside 0–4294967295", *n)
		}
		c.minEvalNumber = *n
	}
	qe, err := u16("min_qe_svn", p.MinQESVN)
	if err != nil {
		return nil, err
	}
	if qe != nil {
		c.minQESVN = max(c.minQESVN, *qe)
	}
	return c, nil
}

// checkQESVN rejects a Quoting Enclave (its PCK-signed report) below the
// minimum ISVSVN.
func (c *compiled) checkQESVN(r *quote.ReportBody) error {
	if r.ISVSVN < c.minQESVN {
		return reject("sgx.qe.svn", "the Quoting Enclave's ISVSVN %d is below the minimum %d (sgx.min_qe_svn, at least %d); update the platform software", r.ISVSVN, c.minQESVN, MinQESVN)
	}
	return nil
}

// checkEvalNumber rejects collateral (TCB Info or QE Identity, by code
// prefix) issued before the policy's minimum tcbEvaluationDataNumber.
func (c *compiled) checkEvalNumber(prefix, what string, n int) error {
	if int64(n) < c.minEvalNumber {
		return reject(prefix+".eval_data_number", "the %s has tcbEvaluationDataNumber %d, below sgx.min_tcb_evaluation_data_number %d: "+
			"it predates a TCB Recovery the policy requires; refresh the %s on the Keep host from Intel PCS", what, n, c.minEvalNumber, what)
	}
	return nil
}

// knownAttributes are the ATTRIBUTES bits upstream's Features type knows;
// other (reserved) bits are ignored like upstream's from_bits_truncate.
const knownAttributes = quote.AttrInit | quote.AttrDebug | quote.AttrMode64Bit | quote.AttrProvisionKey |
	quote.AttrEInitTokenKey | quote.AttrCET | quote.AttrKSS | quote.AttrAEXNotify

// check applies the enclave-identity part of the policy, in upstream's order.
func (c *compiled) check(r *quote.ReportBody) error {
	if len(c.signers) > 0 && !slices.Contains(c.signers, r.MRSIGNER) {
		return reject("sgx.policy.mrsigner", "enclave signer (MRSIGNER) %x is not in sgx.signer", r.MRSIGNER)
	}
	if len(c.hashes) > 0 && !slices.Contains(c.hashes, r.MRENCLAVE) {
		return reject("sgx.policy.mrenclave", "enclave measurement (MRENCLAVE) %x is not in sgx.hash", r.MRENCLAVE)
	}
	if slices.Contains(c.denied, r.MRENCLAVE) {
		return reject("sgx.policy.mrenclave_denied", "enclave measurement (MRENCLAVE) %x is in sgx.hash_blacklist", r.MRENCLAVE)
	}
	if c.productID != nil && r.ISVProdID != *c.productID {
		return reject("sgx.policy.product_id", "enclave product ID %d is not sgx.enclave_product_id %d", r.ISVProdID, *c.productID)
	}
	if c.minSVN != nil && r.ISVSVN < *c.minSVN {
		return reject("sgx.policy.svn", "enclave security version %d is below sgx.enclave_security_version %d", r.ISVSVN, *c.minSVN)
	}
	attrs := r.Attributes & knownAttributes
	if c.features == nil {
		if attrs&quote.AttrDebug != 0 {
			return reject("sgx.policy.debug", "the enclave runs in debug mode; allow it explicitly with sgx.features = [\"Debug\", …]")
		}
	} else if extra := attrs &^ (*c.features | quote.AttrInit | quote.AttrMode64Bit); extra != 0 {
		code := "sgx.policy.attributes"
		if extra&quote.AttrDebug != 0 {
			code = "sgx.policy.debug"
		}
		return reject(code, "enclave attributes %#x include %#x, which sgx.features does not allow", r.Attributes, extra)
	}
	if c.checkMisc && r.MiscSelect&^c.miscSelect != 0 {
		return reject("sgx.policy.misc_select", "enclave MISCSELECT %#x has bits sgx.misc_select does not allow", r.MiscSelect)
	}
	return nil
}

// checkTCB is upstream's TCB status rule, applied to the platform's TCB
// level (codes sgx.tcb.*) and, when QE Identity is present, to the Quoting
// Enclave's level (sgx.qeid.*): with a non-empty allowed_advisories every
// advisory of the level must be allowed, whatever the status; otherwise the
// status must be UpToDate. A level with status Revoked is always rejected
// (upstream would accept it with a covering allow-list).
func (c *compiled) checkTCB(prefix, what, status string, advisories []string) error {
	if status == tcbinfo.StatusRevoked {
		return reject(prefix+".status", "the %s TCB level is Revoked", what)
	}
	if len(c.advisories) == 0 {
		if status != tcbinfo.StatusUpToDate {
			return reject(prefix+".status", "the %s TCB status is %s, not UpToDate (advisories %v); update the platform or list the advisories in sgx.allowed_advisories",
				what, status, advisories)
		}
		return nil
	}
	var extra []string
	for _, a := range advisories {
		if !c.advisoriesSet[a] {
			extra = append(extra, a)
		}
	}
	if len(extra) > 0 {
		return reject(prefix+".advisory", "the %s TCB level (%s) has advisories %v that sgx.allowed_advisories does not list", what, status, extra)
	}
	return nil
}
