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
	v := tdxVerifier(t, []byte("[tdx]\nmrtd = [\""+strings.Repeat("00", 48)+"\"]\n"))
	if v == nil {
		t.Fatal("no TDX verifier with a [tdx] table")
	}
	if claims, err := v.Verify(context.Background(), req); err != nil || claims.Kind != attest.KindTDX {
		t.Fatalf("[tdx] naming the TD's MRTD: %+v, %v", claims, err)
	}
}
