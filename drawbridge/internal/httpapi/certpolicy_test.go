package httpapi

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"testing"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

// attestedClient is a client whose certificate, from the trusted CA,
// carries a (nil: no) attested-as extension, as a Steward writes it.
func (e *env) attestedClient(a *certext.AttestedAs) *http.Client {
	e.t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "keep"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if a != nil {
		ext, err := a.Extension()
		if err != nil {
			e.t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{ext}
	}
	return e.pki.client(e.pki.issue(e.t, tmpl))
}

// TestCertPolicyRequiresHardware: with RequireAttestedHardware, only a
// client certificate recording hardware-backed evidence, a TEE not in
// debug mode and a Steward not in debug mode reads a private tree; the
// others (no extension, no-hardware evidence, a debug TEE, a debug
// Steward) are refused like anonymous clients (404, as for a missing
// repository). Without the setting, all of them read it (the registry's
// default, unchanged).
func TestCertPolicyRequiresHardware(t *testing.T) {
	snp := attest.Claims{Kind: attest.KindSNP, HardwareBacked: true, Measurement: make([]byte, 48)}
	debugTEE := snp
	debugTEE.Debug = true
	noHW := attest.Claims{Kind: attest.KindNone, Debug: true}
	cases := []struct {
		name string
		a    *certext.AttestedAs
		ok   bool
	}{
		{"hardware", &certext.AttestedAs{Claims: snp}, true},
		{"no extension", nil, false},
		{"no hardware, debug steward", &certext.AttestedAs{Claims: noHW, StewardDebug: true}, false},
		{"emulated root", &certext.AttestedAs{Claims: attest.Claims{Kind: attest.KindSNP}}, false},
		{"debug TEE", &certext.AttestedAs{Claims: debugTEE}, false},
		{"debug steward", &certext.AttestedAs{Claims: snp, StewardDebug: true}, false},
	}
	for _, policy := range []bool{false, true} {
		e := newEnv(t)
		e.srv.Config.Handler.(*Handler).cfg.RequireAttestedHardware = policy
		e.setup("alice", testSubject, e.token, map[string]bool{"priv": false})
		e.publish(e.anon, "/alice/priv", "0.1.0", e.token, testPackage(t, ""))
		for _, tc := range cases {
			want := 200
			if policy && !tc.ok {
				want = 404 // as a missing repository
			}
			r := e.req(e.attestedClient(tc.a), "GET", "/alice/priv/_tag/0.1.0/tree/main.wasm", "", nil, nil)
			e.expect(r, want, fmt.Sprintf("%s, policy %v", tc.name, policy))
		}
	}
}
