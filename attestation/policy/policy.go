// Package policy loads the Steward's policy file (TOML) and builds the
// evidence verifiers it describes.
//
// The file is compatible with upstream Steward's: its `[sgx]` and `[snp]`
// tables load and mean the same (steward.md §8), with three deliberate
// differences that are stricter: `policy_flags` is enforced, unknown keys are
// errors, and SGX debug enclaves need `features = ["Debug", …]`. It adds a
// `[tdx]` table (TDX evidence is verified only when it is present: upstream
// has no TDX, so a file written for upstream must not admit every TD), a
// `[none]` table that is the only way to accept
// no-hardware evidence outside debug mode, SNP report-version, TCB and guest
// SVN minimums (`minimum_tcb` covers LAUNCH_TCB as well as REPORTED_TCB
// unless `minimum_launch_tcb` says otherwise), an SGX minimum
// tcbEvaluationDataNumber for TCB Info and QE Identity, and a top-level
// `verify_time` that pins the verification clock. See docs/policy.md.
//
// The file is trusted configuration, but it is still validated strictly:
// every error names the offending key.
package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-sev-guest/kds"
	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/attestation/sgx"
	"github.com/enarx-go/enarx/attestation/snp"
	"github.com/enarx-go/enarx/attestation/tdx"
)

// Policy is a parsed and validated policy file.
type Policy struct {
	// SGX is the `[sgx]` table (nil when absent: any non-debug enclave on an
	// UpToDate platform, like upstream).
	SGX *sgx.Policy
	// SNP is the compiled `[snp]` table (nil when absent: structural checks
	// only, like upstream).
	SNP *snp.Policy
	// TDX is the compiled `[tdx]` table (nil when absent: TDX evidence is
	// refused, as upstream, which has no TDX, refuses it).
	TDX *tdx.Policy
	// AllowNoHardware is `[none] allow = true`: accept evidence from Keeps
	// without TEE hardware even when the Steward is not in debug mode.
	AllowNoHardware bool
	// VerifyTime is the pinned verification clock (`verify_time`), zero if
	// unset.
	VerifyTime time.Time
	// SNPEmulatedRoots and TDXEmulatedRoots are the test roots of enarx's
	// snp-emulated and tdx-emulated backends that the policy names
	// (`[snp] emulated_root`, `[tdx] emulated_root`). They are trusted in
	// addition to AMD's and Intel's roots; claims under them are recorded
	// as not hardware-backed. Empty unless named: never the default.
	SNPEmulatedRoots []snp.Root
	TDXEmulatedRoots []*x509.Certificate
}

// EmulatedRoots describes the emulated roots the policy trusts (for the
// Steward to log loudly at start); empty when none.
func (p *Policy) EmulatedRoots() []string {
	var out []string
	for _, r := range p.SNPEmulatedRoots {
		out = append(out, "snp: "+r.ARK.Subject.String())
	}
	for _, r := range p.TDXEmulatedRoots {
		out = append(out, "tdx: "+r.Subject.String())
	}
	return out
}

// parsePEMCerts parses one or more PEM certificates.
func parsePEMCerts(key, s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q, want CERTIFICATE", key, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(out) == 0 {
		return nil, fmt.Errorf("%s: want PEM certificates", key)
	}
	return out, nil
}

// file is the TOML document.
type file struct {
	SGX        *sgx.Policy `toml:"sgx"`
	SNP        *snpTable   `toml:"snp"`
	TDX        *tdxTable   `toml:"tdx"`
	None       *noneTable  `toml:"none"`
	VerifyTime *time.Time  `toml:"verify_time"`
}

type snpTable struct {
	Signer                    []string  `toml:"signer"`
	Hash                      []string  `toml:"hash"`
	HashBlacklist             []string  `toml:"hash_blacklist"`
	IDKeyDigest               []string  `toml:"id_key_digest"`
	IDKeyDigestBlacklist      []string  `toml:"id_key_digest_blacklist"`
	ABI                       *string   `toml:"abi"`
	PolicyFlags               *[]string `toml:"policy_flags"`
	PlatformInfoFlags         *string   `toml:"platform_info_flags"`
	MinReportVersion          *int64    `toml:"min_report_version"`
	MaxReportVersion          *int64    `toml:"max_report_version"`
	MinimumTCB                *tcbParts `toml:"minimum_tcb"`
	MinimumLaunchTCB          *tcbParts `toml:"minimum_launch_tcb"`
	MinimumGuestSVN           *int64    `toml:"minimum_guest_svn"`
	PermitProvisionalFirmware bool      `toml:"permit_provisional_firmware"`
	// EmulatedRoot is the PEM ARK and ASK of enarx's snp-emulated backend;
	// see docs/confidential-vms.md. Never set it in production.
	EmulatedRoot *string `toml:"emulated_root"`
}

type tcbParts struct {
	Bootloader int64 `toml:"bootloader"`
	TEE        int64 `toml:"tee"`
	SNP        int64 `toml:"snp"`
	Microcode  int64 `toml:"microcode"`
}

// compile checks the SPLs against their ranges (key names the table).
func (m *tcbParts) compile(key string) (kds.TCBParts, error) {
	for _, c := range []struct {
		key string
		v   int64
		max int64
	}{{"bootloader", m.Bootloader, 127}, {"tee", m.TEE, 127}, {"snp", m.SNP, 127}, {"microcode", m.Microcode, 255}} {
		if c.v < 0 || c.v > c.max {
			return kds.TCBParts{}, fmt.Errorf("%s.%s: %d is outside 0–%d", key, c.key, c.v, c.max)
		}
	}
	return kds.TCBParts{BlSpl: uint8(m.Bootloader), TeeSpl: uint8(m.TEE), SnpSpl: uint8(m.SNP), UcodeSpl: uint8(m.Microcode)}, nil
}

type noneTable struct {
	Allow bool `toml:"allow"`
}

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// Parse parses and validates a policy document. An empty document is valid
// (upstream's default policy).
func Parse(data []byte) (*Policy, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&f)
	if err != nil {
		return nil, decodeError(err)
	}
	if err := checkKeyCase(data); err != nil {
		return nil, err
	}
	p := &Policy{SGX: f.SGX}
	if f.SGX != nil {
		if err := f.SGX.Validate(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	if f.SNP != nil {
		if p.SNP, err = f.SNP.compile(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if f.SNP.EmulatedRoot != nil {
			certs, err := parsePEMCerts("snp.emulated_root", *f.SNP.EmulatedRoot)
			if err != nil {
				return nil, fmt.Errorf("policy: %w", err)
			}
			if len(certs) != 2 {
				return nil, fmt.Errorf("policy: snp.emulated_root: want the emulated ARK and ASK (2 certificates), got %d", len(certs))
			}
			p.SNPEmulatedRoots = []snp.Root{{ProductLine: "Milan", ARK: certs[0], ASK: certs[1], Emulated: true}}
		}
	}
	if f.TDX != nil {
		if p.TDX, err = f.TDX.compile(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if f.TDX.EmulatedRoot != nil {
			certs, err := parsePEMCerts("tdx.emulated_root", *f.TDX.EmulatedRoot)
			if err != nil {
				return nil, fmt.Errorf("policy: %w", err)
			}
			p.TDXEmulatedRoots = certs
		}
	}
	if f.None != nil {
		p.AllowNoHardware = f.None.Allow
	}
	if f.VerifyTime != nil {
		// A TOML local date-time (no offset) decodes in the server's time
		// zone: the same policy would pin another instant on each Steward.
		if f.VerifyTime.Location() == time.Local {
			return nil, fmt.Errorf("policy: verify_time: %s has no UTC offset, so its instant would depend on the Steward's time zone; write it with Z (%sZ) or an offset",
				f.VerifyTime.Format("2006-01-02T15:04:05"), f.VerifyTime.Format("2006-01-02T15:04:05"))
		}
		p.VerifyTime = f.VerifyTime.UTC()
	}
	return p, nil
}

// decodeError names the line and key of a TOML error: a syntax error, a
// value of the wrong type, or keys the policy does not know.
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			row, _ := e.Position()
			keys[i] = fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row)
		}
		return fmt.Errorf("policy: unknown key %s (known tables: sgx, snp, tdx, none; see docs/policy.md)", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("policy: line %d, column %d: %s: %s", row, col, strings.Join(k, "."), msg)
		}
		return fmt.Errorf("policy: line %d, column %d: %s", row, col, msg)
	}
	return fmt.Errorf("policy: %w", err)
}

// checkKeyCase refuses keys that name a policy key only when case is
// ignored. TOML keys are case-sensitive (`Allow` is not `allow`), but the
// decoder matches struct fields case-insensitively: it would apply such an
// unknown key, and even let it override the correctly spelled one. data has
// already been decoded strictly, so it is valid TOML and every key matches
// a field but for case.
func checkKeyCase(data []byte) error {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return decodeError(err)
	}
	return checkTableKeys(doc, reflect.TypeFor[file](), "")
}

func checkTableKeys(table map[string]any, t reflect.Type, prefix string) error {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f, ok := fieldByKey(t, k)
		if !ok {
			return fmt.Errorf("policy: unknown key %s%s (keys are case-sensitive; known tables: sgx, snp, tdx, none; see docs/policy.md)", prefix, k)
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sub, ok := table[k].(map[string]any); ok && ft.Kind() == reflect.Struct {
			if err := checkTableKeys(sub, ft, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldByKey returns the field of struct type t whose toml tag is exactly key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// digests decodes a list of hex digests of size bytes (case-insensitive).
func digests(key string, in []string, size int) ([][]byte, error) {
	out := make([][]byte, 0, len(in))
	for i, s := range in {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != size {
			return nil, fmt.Errorf("%s[%d]: %q is not a %d-byte digest (%d hex digits)", key, i, s, size, 2*size)
		}
		out = append(out, b)
	}
	return out, nil
}

func overlap(a, b [][]byte) []byte {
	for _, x := range a {
		if slices.ContainsFunc(b, func(y []byte) bool { return bytes.Equal(x, y) }) {
			return x
		}
	}
	return nil
}

// abiRequirement converts a Rust semver VersionReq (upstream's `abi`) to a
// Masterminds constraint: a comparator without an operator means caret
// ("1.51" is "^1.51"), comparators are separated by commas.
func abiRequirement(s string) (*semver.Constraints, error) {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, errors.New("empty comparator")
		}
		if p[0] >= '0' && p[0] <= '9' {
			p = "^" + p
		}
		parts[i] = p
	}
	return semver.NewConstraint(strings.Join(parts, ", "))
}

func inRange(key string, v *int64, lo, hi int64) error {
	if v != nil && (*v < lo || *v > hi) {
		return fmt.Errorf("%s: %d is outside %d–%d", key, *v, lo, hi)
	}
	return nil
}

func (t *snpTable) compile() (*snp.Policy, error) {
	p := &snp.Policy{PermitProvisionalFirmware: t.PermitProvisionalFirmware}
	if err := t.compileLists(p); err != nil {
		return nil, err
	}
	if err := t.compileFlags(p); err != nil {
		return nil, err
	}
	if err := t.compileVersions(p); err != nil {
		return nil, err
	}
	return p, nil
}

// compileLists decodes the digest allow- and deny-lists.
func (t *snpTable) compileLists(p *snp.Policy) error {
	var err error
	for _, d := range []struct {
		key string
		in  []string
		out *[][]byte
	}{
		{"snp.signer", t.Signer, &p.Signers},
		{"snp.hash", t.Hash, &p.Measurements},
		{"snp.hash_blacklist", t.HashBlacklist, &p.MeasurementDenylist},
		{"snp.id_key_digest", t.IDKeyDigest, &p.IDKeyDigests},
		{"snp.id_key_digest_blacklist", t.IDKeyDigestBlacklist, &p.IDKeyDenylist},
	} {
		if *d.out, err = digests(d.key, d.in, 48); err != nil {
			return err
		}
	}
	if len(p.Signers)+len(p.Measurements)+len(p.MeasurementDenylist) == 0 {
		return errors.New("snp: at least one of signer, hash or hash_blacklist must be set")
	}
	if d := overlap(p.Measurements, p.MeasurementDenylist); d != nil {
		return fmt.Errorf("snp.hash_blacklist: %x is also listed in snp.hash", d)
	}
	if d := overlap(p.IDKeyDigests, p.IDKeyDenylist); d != nil {
		return fmt.Errorf("snp.id_key_digest_blacklist: %x is also listed in snp.id_key_digest", d)
	}
	return nil
}

// compileFlags decodes abi, policy_flags and platform_info_flags.
func (t *snpTable) compileFlags(p *snp.Policy) error {
	var err error
	if t.ABI != nil {
		if p.ABI, err = abiRequirement(*t.ABI); err != nil {
			return fmt.Errorf("snp.abi: %q is not a semver requirement such as \">=1.51\": %w", *t.ABI, err)
		}
	}
	if t.PolicyFlags != nil {
		f := &snp.Flags{}
		for i, name := range *t.PolicyFlags {
			switch name {
			case "SMT":
				f.SMT = true
			case "Debug":
				f.Debug = true
			case "SingleSocket":
				f.SingleSocket = true
			case "Reserved": // always set; accepted for compatibility
			default:
				return fmt.Errorf("snp.policy_flags[%d]: unknown flag %q (want SMT, Debug or SingleSocket)", i, name)
			}
		}
		p.Flags = f
	}
	if t.PlatformInfoFlags != nil {
		var v uint8
		for _, name := range strings.Split(*t.PlatformInfoFlags, "|") {
			switch strings.TrimSpace(name) {
			case "SME": // upstream's name for PLATFORM_INFO bit 0 (SMT_EN)
				v |= 1
			case "TSME":
				v |= 2
			default:
				return fmt.Errorf("snp.platform_info_flags: unknown flag %q (want SME, TSME or \"SME | TSME\")", name)
			}
		}
		p.PlatformInfo = &v
	}
	return nil
}

// compileVersions checks the report versions, the minimum reported and
// launch TCBs and the minimum guest SVN against their ranges.
func (t *snpTable) compileVersions(p *snp.Policy) error {
	if err := inRange("snp.min_report_version", t.MinReportVersion, 2, 5); err != nil {
		return err
	}
	if err := inRange("snp.max_report_version", t.MaxReportVersion, 2, 5); err != nil {
		return err
	}
	if t.MinReportVersion != nil {
		p.MinReportVersion = uint32(*t.MinReportVersion)
	}
	if t.MaxReportVersion != nil {
		p.MaxReportVersion = uint32(*t.MaxReportVersion)
	}
	if p.MinReportVersion != 0 && p.MaxReportVersion != 0 && p.MinReportVersion > p.MaxReportVersion {
		return fmt.Errorf("snp.min_report_version: %d is above snp.max_report_version %d", p.MinReportVersion, p.MaxReportVersion)
	}
	var err error
	if t.MinimumTCB != nil {
		if p.MinimumTCB, err = t.MinimumTCB.compile("snp.minimum_tcb"); err != nil {
			return err
		}
	}
	// LAUNCH_TCB defaults to minimum_tcb: a guest launched under older
	// firmware keeps that LAUNCH_TCB after the host raises REPORTED_TCB, and
	// "minimum TCB" should cover what the guest ran under. Stricter than
	// upstream, which checks neither; `minimum_launch_tcb = {}` opts out.
	if t.MinimumLaunchTCB != nil {
		if p.MinimumLaunchTCB, err = t.MinimumLaunchTCB.compile("snp.minimum_launch_tcb"); err != nil {
			return err
		}
	} else {
		p.MinimumLaunchTCB = p.MinimumTCB
	}
	if err := inRange("snp.minimum_guest_svn", t.MinimumGuestSVN, 0, 1<<32-1); err != nil {
		return err
	}
	if t.MinimumGuestSVN != nil {
		p.MinimumGuestSVN = uint32(*t.MinimumGuestSVN)
	}
	return nil
}

// Options configure the verifiers a Policy builds.
type Options struct {
	// SNPRoots replaces AMD's roots (tests and emulators only); nil means
	// AMD's Milan, Genoa and Turin roots.
	SNPRoots []snp.Root
	// TDXRoots replaces the Intel SGX Root CA for TDX (tests and emulators
	// only); nil means Intel's root.
	TDXRoots []*x509.Certificate
	// CacheSize bounds each verifier's caches; 0 means their defaults.
	CacheSize int
}

// Verifiers builds one verifier per evidence kind: no-hardware (KVM),
// SGX, SEV-SNP and, when the policy has a `[tdx]` table, TDX. SGX and
// SEV-SNP without a table are still verified, with upstream's defaults (see
// Policy). TDX without a table has no verifier, so the Steward refuses TDX
// evidence (evidence.unsupported) as upstream, which knows no TDX, does:
// otherwise a policy written for upstream, pinning its SGX and SNP Keeps,
// would certify every TD on genuine hardware, whatever it runs, and a
// present table must name the TDs it admits (tdx.mrtd).
func (p *Policy) Verifiers(opts Options) ([]attest.Verifier, error) {
	s, err := sgx.New(sgx.Options{Policy: p.SGX, CacheSize: opts.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	roots := opts.SNPRoots
	if len(p.SNPEmulatedRoots) > 0 {
		if roots == nil {
			if roots, err = snp.DefaultRoots(); err != nil {
				return nil, fmt.Errorf("policy: %w", err)
			}
		}
		roots = append(append([]snp.Root(nil), roots...), p.SNPEmulatedRoots...)
	}
	n, err := snp.New(snp.Options{Policy: p.SNP, Roots: roots, CacheSize: opts.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	vs := []attest.Verifier{kvm.New(kvm.Options{AllowWithoutDebug: p.AllowNoHardware}), s, n}
	if p.TDX == nil {
		return vs, nil
	}
	t, err := p.tdxVerifier(opts)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return append(vs, t), nil
}
