package policy

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/evidence/emulated"
)

// TestTDXNeedsTable: upstream Steward has no TDX and refuses TDX evidence,
// so a policy without a [tdx] table (upstream's steward.toml, an empty
// file, a file with other tables only) builds no TDX verifier, and the
// Steward refuses TDX evidence with evidence.unsupported. Before, such a
// policy verified TDX with no allow-list: a TD running anything, on any
// up-to-date TDX platform, was certified as hardware-backed by a Steward
// whose policy pinned every SGX and SNP Keep. A [tdx] table that names the
// TD's MRTD admits it.
func TestTDXNeedsTable(t *testing.T) {
	root, err := emulated.NewTDXRoot()
	if err != nil {
		t.Fatal(err)
	}
	req, err := vectors.EmulatedTDXRequest(root, emulated.TDXOptions{}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The emulated root stands in for Intel's: what matters is the policy.
	opts := Options{TDXRoots: []*x509.Certificate{root.Root}}
	tdxVerifier := func(t *testing.T, doc []byte) attest.Verifier {
		t.Helper()
		p, err := Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := p.Verifiers(opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.OID().Equal(attest.OIDEvidenceTDX) {
				return v
			}
		}
		return nil
	}
	for name, doc := range map[string][]byte{
		"upstream steward.toml": vectors.StewardTOML,
		"empty":                 nil,
		"[none] only":           []byte("[none]\nallow = true\n"),
	} {
		if v := tdxVerifier(t, doc); v != nil {
			claims, err := v.Verify(context.Background(), req)
			t.Errorf("%s: a TDX verifier without a [tdx] table; it answered %+v, %v", name, claims, err)
		}
	}
	v := tdxVerifier(t, []byte("[tdx]\nmrtd = [\""+strings.Repeat("00", 48)+"\"]\nallow_any_kernel = true\n"))
	if v == nil {
		t.Fatal("no TDX verifier with a [tdx] table")
	}
	if claims, err := v.Verify(context.Background(), req); err != nil || claims.Kind != attest.KindTDX {
		t.Fatalf("[tdx] naming the TD's MRTD: %+v, %v", claims, err)
	}
}

// TestTDXTableNeedsKernelPins: MRTD covers only a TD's firmware (TDVF);
// with QEMU's direct boot the kernel is measured into RTMR1 and its command
// line and initrd (enarx itself, in a tdx-vm Keep) into RTMR2. A [tdx]
// table that pinned only MRTD, as docs/policy.md and `enarx platform tdx
// measurement` suggested, certified any kernel and init a host booted on
// that firmware, binding whatever key it liked. Such a table is now
// refused unless it says allow_any_kernel = true.
func TestTDXTableNeedsKernelPins(t *testing.T) {
	d := `["` + strings.Repeat("ab", 48) + `"]`
	for _, c := range []struct {
		table string
		ok    bool
	}{
		{"mrtd = " + d, false},
		{"mrtd = " + d + "\nrtmr1 = " + d, false},
		{"mrtd = " + d + "\nrtmr2 = " + d, false},
		{"mrtd = " + d + "\nrtmr0 = " + d + "\nrtmr3 = " + d, false},
		{"mrtd = " + d + "\nrtmr1 = " + d + "\nrtmr2 = " + d, true},
		{"mrtd = " + d + "\nallow_any_kernel = true", true},
	} {
		_, err := Parse([]byte("[tdx]\n" + c.table + "\n"))
		if c.ok && err != nil {
			t.Errorf("[tdx] %q: %v", c.table, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "tdx.rtmr1, tdx.rtmr2")) {
			t.Errorf("[tdx] %q: %v; want it refused for pinning no kernel (rtmr1, rtmr2)", c.table, err)
		}
	}
}
