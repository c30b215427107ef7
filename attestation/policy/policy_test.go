package policy

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/internal/testutil"
)

func TestStewardTOML(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "steward.toml")
	if err := os.WriteFile(path, vectors.StewardTOML, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.SGX == nil || len(p.SGX.Signer) != 1 || len(p.SGX.AllowedAdvisories) != 9 || p.SGX.Features == nil {
		t.Fatalf("sgx: %+v", p.SGX)
	}
	s := p.SNP
	if s == nil || len(s.Signers) != 1 || len(s.IDKeyDigests) != 1 || len(s.Measurements) != 1 {
		t.Fatalf("snp: %+v", s)
	}
	if hex.EncodeToString(s.Measurements[0])[:8] != "ff717ae7" {
		t.Errorf("hash %x", s.Measurements[0])
	}
	if s.ABI == nil || !s.ABI.Check(semver.MustParse("1.51.0")) || s.ABI.Check(semver.MustParse("1.50.0")) {
		t.Errorf("abi %v", s.ABI)
	}
	if s.PlatformInfo == nil || *s.PlatformInfo != 1 {
		t.Errorf("platform_info_flags %v", s.PlatformInfo)
	}
	if s.Flags == nil || !s.Flags.SMT || s.Flags.Debug || s.Flags.SingleSocket {
		t.Errorf("policy_flags %+v", s.Flags)
	}
	if p.AllowNoHardware || p.TDX != nil || !p.VerifyTime.IsZero() {
		t.Errorf("defaults: %+v", p)
	}
	vs, err := p.Verifiers(Options{})
	if err != nil {
		t.Fatal(err)
	}
	// No [tdx] table, no TDX verifier (TestTDXNeedsTable).
	want := []string{attest.OIDEvidenceKVM.String(), attest.OIDEvidenceSGX.String(), attest.OIDEvidenceSNP.String()}
	if len(vs) != len(want) {
		t.Fatalf("%d verifiers", len(vs))
	}
	for i, v := range vs {
		if v.OID().String() != want[i] {
			t.Errorf("verifier %d: %v, want %s", i, v.OID(), want[i])
		}
	}
}

func TestEmptyAndExtras(t *testing.T) {
	p, err := Parse(nil)
	if err != nil || p.SGX != nil || p.SNP != nil || p.TDX != nil || p.AllowNoHardware {
		t.Fatalf("empty: %+v %v", p, err)
	}
	p, err = Parse([]byte(`
verify_time = 2023-02-01T00:00:00Z
[none]
allow = true
[snp]
hash_blacklist = ["` + strings.Repeat("ab", 48) + `"]
abi = "1.0"
min_report_version = 2
max_report_version = 3
minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }
minimum_guest_svn = 1
permit_provisional_firmware = true
platform_info_flags = "SME | TSME"
policy_flags = ["SMT", "SingleSocket", "Reserved"]
[tdx]
mrtd = ["` + strings.Repeat("01", 48) + `"]
rtmr1 = ["` + strings.Repeat("03", 48) + `"]
rtmr2 = ["` + strings.Repeat("02", 48) + `"]
td_attributes = "0000001000000000"
minimum_tee_tcb_svn = "` + strings.Repeat("00", 16) + `"
minimum_qe_svn = 8
`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowNoHardware || !p.VerifyTime.Equal(vectors.Time) {
		t.Errorf("none/verify_time: %+v", p)
	}
	s := p.SNP
	if !s.ABI.Check(semver.MustParse("1.51.0")) || s.ABI.Check(semver.MustParse("2.0.0")) {
		t.Errorf(`abi "1.0" must mean ^1.0`)
	}
	if s.MaxReportVersion != 3 || s.MinimumTCB.SnpSpl != 6 || s.MinimumTCB.UcodeSpl != 93 || s.MinimumGuestSVN != 1 || !s.PermitProvisionalFirmware {
		t.Errorf("snp extras: %+v", s)
	}
	if *s.PlatformInfo != 3 || !s.Flags.SingleSocket {
		t.Errorf("flags: %v %+v", *s.PlatformInfo, s.Flags)
	}
	if len(p.TDX.MRTD) != 1 || len(p.TDX.RTMR[2]) != 1 || p.TDX.MinimumQESVN != 8 || len(p.TDX.TDAttributes) != 8 {
		t.Errorf("tdx: %+v", p.TDX)
	}
	if _, err := p.Verifiers(Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	d48 := `"` + strings.Repeat("ab", 48) + `"`
	d32 := `"` + strings.Repeat("ab", 32) + `"`
	cases := []struct{ doc, key string }{
		{"[snp]\nhash = [" + d32 + "]", "snp.hash[0]"},
		{"[snp]\nhash = [\"\"]", "snp.hash[0]"},
		{"[snp]\nsigner = [\"zz\"]", "snp.signer[0]"},
		{"[snp]\nid_key_digest = [" + d48 + "]", "snp: at least one of signer, hash or hash_blacklist"},
		{"[snp]\nhash = [" + d48 + "]\nhash_blacklist = [" + d48 + "]", "snp.hash_blacklist"},
		{"[snp]\nhash = [" + d48 + "]\nabi = \">>1\"", "snp.abi"},
		{"[snp]\nhash = [" + d48 + "]\npolicy_flags = [\"MigrateMA\"]", "snp.policy_flags[0]"},
		{"[snp]\nhash = [" + d48 + "]\nplatform_info_flags = \"ECC\"", "snp.platform_info_flags"},
		{"[snp]\nhash = [" + d48 + "]\nmax_report_version = 6", "snp.max_report_version"},
		{"[snp]\nhash = [" + d48 + "]\nmin_report_version = 4\nmax_report_version = 3", "snp.min_report_version"},
		{"[snp]\nhash = [" + d48 + "]\nminimum_tcb = { snp = 200 }", "snp.minimum_tcb.snp"},
		{"[snp]\nhash = [" + d48 + "]\nfeatures = [\"Debug\"]", "snp.features"},
		{"[snp]\nhash = [" + d48 + "]\nabi = 1", "snp.abi"},
		{"[sgx]\nhash = [" + d48 + "]", "sgx.hash[0]"},
		{"[sgx]\nfeatures = [\"Debug\"]", "sgx: at least one of"},
		{"[sgx]\nsigner = [" + d32 + "]\nabi = \"*\"", "sgx.abi"},
		{"[tdx]\nmrtd = [" + d32 + "]", "tdx.mrtd[0]"},
		{"[tdx]\ntd_attributes = \"01\"", "tdx.td_attributes"},
		{"[tdx]\ntd_attributes = \"0100000000000000\"", "tdx.allow_debug"},
		{"[tdx]\nminimum_qe_svn = 70000", "tdx.minimum_qe_svn"},
		{"[kvm]\nallow = true", "kvm"},
		{"[snp]\nhash = [" + d48 + "]\nbogus = 1", "snp.bogus (line 3)"},
		{"[none]\nallow = \"yes\"", "line 2"},
		{"[none]\nallow = \"yes\"", "none.allow"},
		{"verify_time = \"yesterday\"", "verify_time"},
		// A local date-time pinned another instant in each time zone.
		{"verify_time = 2023-02-01T00:00:00", "verify_time: 2023-02-01T00:00:00 has no UTC offset"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.doc))
		if err == nil {
			t.Errorf("%q: no error", c.doc)
			continue
		}
		if !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: error %q does not name %s", c.doc, err, c.key)
		}
	}
}

// TestUpstreamExampleRejected: upstream's steward.toml.example has empty
// digests and misplaced keys, so it does not load (steward.md §8).
func TestUpstreamExampleRejected(t *testing.T) {
	if _, err := Parse([]byte("[sgx]\nsigner = [\"\"]\nhash = [\"\"]\n[snp]\nsigner = [\"\"]\n")); err == nil {
		t.Fatal("loaded upstream's broken example")
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.toml")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func parseSeeds() [][]byte {
	return [][]byte{
		vectors.StewardTOML,
		[]byte("[tdx]\nmrtd = []\n[none]\nallow = true\nverify_time = 2023-02-01T00:00:00Z"),
		[]byte("[sgx]\nsigner = [\"" + strings.Repeat("ab", 32) + "\"]\nmin_tcb_evaluation_data_number = 14\n" +
			"[snp]\nhash = [\"" + strings.Repeat("ab", 48) + "\"]\nminimum_tcb = { bootloader = 2, snp = 6, microcode = 93 }\nminimum_launch_tcb = { snp = 5 }\n"),
	}
}

func FuzzParse(f *testing.F) {
	seeds := parseSeeds()
	testutil.CheckSeedCorpus(f, "FuzzParse", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := p.Verifiers(Options{}); err != nil {
			t.Fatalf("a parsed policy must build verifiers: %v", err)
		}
	})
}

// TestKeysAreCaseSensitive: TOML keys are case-sensitive, so `Allow` is
// not `allow` but an unknown key, and unknown keys are errors. (The TOML
// decoder matches struct fields case-insensitively: without this check a
// mis-cased key was applied, and even overrode the correctly spelled one,
// e.g. `allow = false` then `Allow = true` accepted no-hardware evidence.)
func TestKeysAreCaseSensitive(t *testing.T) {
	d48 := `"` + strings.Repeat("ab", 48) + `"`
	d32 := `"` + strings.Repeat("ab", 32) + `"`
	cases := []struct{ doc, key string }{
		{"[none]\nallow = false\nAllow = true", "none.Allow"},
		{"[None]\nallow = true", "None"},
		{"[sgx]\nsigner = [" + d32 + "]\nfeatures = []\nFEATURES = [\"Debug\"]", "sgx.FEATURES"},
		{"[SNP]\nhash = [" + d48 + "]", "SNP"},
		{"[snp]\nHash = [" + d48 + "]", "snp.Hash"},
		{"[snp]\nhash = [" + d48 + "]\nminimum_tcb = { Bootloader = 2 }", "snp.minimum_tcb.Bootloader"},
		{"[tdx]\nmrtd = [" + d48 + "]\nallow_any_kernel = true\nAllow_Debug = true", "tdx.Allow_Debug"},
		{"Verify_Time = 2023-02-01T00:00:00Z", "Verify_Time"},
	}
	for _, c := range cases {
		p, err := Parse([]byte(c.doc))
		if err == nil {
			t.Errorf("%q: accepted (allow no-hardware %v, sgx %+v)", c.doc, p.AllowNoHardware, p.SGX)
			continue
		}
		if !strings.Contains(err.Error(), "unknown key "+c.key) {
			t.Errorf("%q: error %q does not name the unknown key %s", c.doc, err, c.key)
		}
	}
}

// TestTDXTableNeedsMRTD: like [snp] and [sgx] (which need signer, hash or
// hash_blacklist), a present [tdx] table must restrict which TDs pass. Only
// MRTD does: RTMRs are extended by the TD's own (possibly hostile)
// firmware, MRSEAM is Intel's TDX module, and MRCONFIGID/MROWNER are chosen
// by the host. An empty table accepted every TD on genuine hardware.
func TestTDXTableNeedsMRTD(t *testing.T) {
	d48 := `"` + strings.Repeat("ab", 48) + `"`
	for _, doc := range []string{
		"[tdx]",
		"[tdx]\nallow_debug = false",
		"[tdx]\nminimum_qe_svn = 8",
		"[tdx]\nmrtd = []",
		"[tdx]\nmrseam = [" + d48 + "]\nrtmr0 = [" + d48 + "]\nmrconfigid = [" + d48 + "]\nmrowner = [" + d48 + "]",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "tdx.mrtd") {
			t.Errorf("%q: error %v, want one naming tdx.mrtd", doc, err)
		}
	}
	p, err := Parse([]byte("[tdx]\nmrtd = [" + d48 + "]\nallow_any_kernel = true\n"))
	if err != nil || p.TDX == nil || len(p.TDX.MRTD) != 1 {
		t.Fatalf("mrtd only: %+v, %v", p, err)
	}
	// Without a table, TDX evidence is refused (TestTDXNeedsTable).
	if p, err := Parse(nil); err != nil || p.TDX != nil {
		t.Fatalf("empty document: %+v, %v", p, err)
	}
}
