package sgx

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
	"github.com/enarx-go/enarx/attestation/sgx/tcbinfo"
)

func TestIntelRootCA(t *testing.T) {
	if got := sha256.Sum256(intelRootDER); hex.EncodeToString(got[:]) != "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3" {
		t.Fatalf("embedded root fingerprint %x", got)
	}
	if IntelRootCA().Subject.CommonName != "Intel SGX Root CA" {
		t.Fatal("wrong root")
	}
}

func TestValidateNamesKey(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for _, c := range []struct {
		toml string
		key  string
	}{
		{`features = ["Debug"]`, "sgx: at least one of"},
		{`signer = ["abcd"]`, "sgx.signer[0]"},
		{`hash = ["` + d + `", "zz"]`, "sgx.hash[1]"},
		{`hash_blacklist = ["` + d + `0"]`, "sgx.hash_blacklist[0]"},
		{`hash = ["` + d + `"]` + "\n" + `hash_blacklist = ["` + strings.ToUpper(d) + `"]`, "sgx.hash_blacklist"},
		{`signer = ["` + d + `"]` + "\n" + `features = ["Debug", "Turbo"]`, "sgx.features[1]"},
		{`signer = ["` + d + `"]` + "\n" + `misc_select = ["FOO"]`, "sgx.misc_select[0]"},
		{`signer = ["` + d + `"]` + "\n" + `enclave_security_version = 70000`, "sgx.enclave_security_version"},
		{`signer = ["` + d + `"]` + "\n" + `enclave_product_id = -1`, "sgx.enclave_product_id"},
		{`signer = ["` + d + `"]` + "\n" + `allowed_advisories = [""]`, "sgx.allowed_advisories[0]"},
	} {
		var p Policy
		if err := toml.Unmarshal([]byte(c.toml), &p); err != nil {
			t.Fatalf("%s: %v", c.toml, err)
		}
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: got %v, want an error naming %s", c.toml, err, c.key)
		}
		if _, err := New(Options{Policy: &p}); err == nil {
			t.Errorf("%q: New accepted an invalid policy", c.toml)
		}
	}
	var p Policy
	if err := toml.Unmarshal([]byte(`hash = ["`+strings.ToUpper(d)+`"]`), &p); err != nil || p.Validate() != nil {
		t.Fatal("upper-case digest rejected")
	}
	if (*Policy)(nil).Validate() != nil {
		t.Fatal("absent [sgx] table rejected")
	}
}

func code(err error) string {
	if err == nil {
		return ""
	}
	r, ok := attest.AsRejection(err)
	if !ok {
		return "not a rejection: " + err.Error()
	}
	return r.Code
}

func compile(t *testing.T, p *Policy) *compiled {
	t.Helper()
	c, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAttributes(t *testing.T) {
	signer := strings.Repeat("00", 32)
	features := func(f ...string) *Policy { return &Policy{Signer: []string{signer}, Features: &f} }
	prod := quote.AttrInit | quote.AttrMode64Bit
	for _, c := range []struct {
		name   string
		policy *Policy
		attrs  uint64
		want   string
	}{
		{"no table, production", nil, prod, ""},
		{"no table, debug", nil, prod | quote.AttrDebug, "sgx.policy.debug"},
		{"no features, debug", &Policy{Signer: []string{signer}}, prod | quote.AttrDebug, "sgx.policy.debug"},
		{"no features, kss", &Policy{Signer: []string{signer}}, prod | quote.AttrKSS, ""},
		{"empty features, kss", features(), prod | quote.AttrKSS, "sgx.policy.attributes"},
		{"empty features, debug", features(), prod | quote.AttrDebug, "sgx.policy.debug"},
		{"debug allowed", features("Debug"), prod | quote.AttrDebug, ""},
		{"upstream test features", features("Debug", "ProvisioningKey", "EInitKey", "KSS"), prod | quote.AttrProvisionKey | quote.AttrKSS, ""},
		{"cet not allowed", features("Debug"), prod | quote.AttrCET, "sgx.policy.attributes"},
		{"reserved bits ignored", features(), prod | 1<<3 | 1<<40, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &quote.ReportBody{Attributes: c.attrs}
			if got := code(compile(t, c.policy).check(r)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestTCBRule(t *testing.T) {
	signer := []string{strings.Repeat("00", 32)}
	level := func(status string, adv ...string) *tcbinfo.Level {
		return &tcbinfo.Level{TCBStatus: status, AdvisoryIDs: adv}
	}
	none := compile(t, nil)
	some := compile(t, &Policy{Signer: signer, AllowedAdvisories: []string{"A", "B"}})
	for _, c := range []struct {
		name string
		p    *compiled
		l    *tcbinfo.Level
		want string
	}{
		{"uptodate", none, level(tcbinfo.StatusUpToDate), ""},
		{"swhardening without list", none, level(tcbinfo.StatusSWHardeningNeeded, "A"), "sgx.tcb.status"},
		{"outofdate without list", none, level(tcbinfo.StatusOutOfDate, "A"), "sgx.tcb.status"},
		{"outofdate covered", some, level(tcbinfo.StatusOutOfDate, "B", "A"), ""},
		{"outofdate no advisories", some, level(tcbinfo.StatusOutOfDate), ""}, // upstream: passes
		{"extra advisory", some, level(tcbinfo.StatusSWHardeningNeeded, "A", "C"), "sgx.tcb.advisory"},
		{"revoked", some, level(tcbinfo.StatusRevoked), "sgx.tcb.status"},
		{"revoked without list", none, level(tcbinfo.StatusRevoked), "sgx.tcb.status"},
	} {
		if got := code(c.p.checkTCB("sgx.tcb", "platform", c.l.TCBStatus, c.l.AdvisoryIDs)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestIdentityPolicy(t *testing.T) {
	var r quote.ReportBody
	r.MRENCLAVE[0], r.MRSIGNER[0], r.ISVProdID, r.ISVSVN, r.MiscSelect = 1, 2, 3, 4, 1
	hx := func(b [32]byte) string { return hex.EncodeToString(b[:]) }
	for _, c := range []struct {
		name string
		p    *Policy
		want string
	}{
		{"all match", &Policy{Signer: []string{hx(r.MRSIGNER)}, Hash: []string{hx(r.MRENCLAVE)}, EnclaveProductID: p(3), EnclaveSecurityVersion: p(4), MiscSelect: []string{"EXINFO"}}, ""},
		{"svn lower", &Policy{Signer: []string{hx(r.MRSIGNER)}, EnclaveSecurityVersion: p(3)}, ""},
		{"svn higher", &Policy{Signer: []string{hx(r.MRSIGNER)}, EnclaveSecurityVersion: p(5)}, "sgx.policy.svn"},
		{"product", &Policy{Signer: []string{hx(r.MRSIGNER)}, EnclaveProductID: p(2)}, "sgx.policy.product_id"},
		{"signer", &Policy{Signer: []string{hx(r.MRENCLAVE)}}, "sgx.policy.mrsigner"},
		{"hash", &Policy{Hash: []string{hx(r.MRSIGNER)}}, "sgx.policy.mrenclave"},
		{"denied", &Policy{HashBlacklist: []string{hx(r.MRENCLAVE)}}, "sgx.policy.mrenclave_denied"},
		{"denied other", &Policy{HashBlacklist: []string{hx(r.MRSIGNER)}}, ""},
	} {
		if got := code(compile(t, c.p).check(&r)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	r.MiscSelect = 3 // EXINFO and an unnamed bit
	for _, c := range []struct {
		name string
		p    *Policy
		want string
	}{
		{"misc_select unset", &Policy{Signer: []string{hx(r.MRSIGNER)}}, ""},
		{"misc_select extra bit", &Policy{Signer: []string{hx(r.MRSIGNER)}, MiscSelect: []string{"EXINFO"}}, "sgx.policy.misc_select"},
	} {
		if got := code(compile(t, c.p).check(&r)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
