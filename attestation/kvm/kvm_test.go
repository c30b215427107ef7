package kvm

import (
	"context"
	"crypto/x509/pkix"
	"testing"

	"github.com/enarx-go/enarx/attest"
)

func TestVerify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		debug    bool
		critical bool
		value    []byte
		code     string // "" means accepted
	}{
		{name: "debug steward accepts", debug: true},
		{name: "production steward refuses", code: CodeNotAllowed},
		{name: "policy switch accepts without debug", opts: Options{AllowWithoutDebug: true}},
		{name: "non-empty value", debug: true, value: []byte{0}, code: CodeValue},
		{name: "critical", debug: true, critical: true, code: CodeCritical},
		{name: "critical with policy switch", opts: Options{AllowWithoutDebug: true}, critical: true, code: CodeCritical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := New(tc.opts)
			if !v.OID().Equal(attest.OIDEvidenceKVM) {
				t.Fatalf("OID = %v", v.OID())
			}
			c, err := v.Verify(context.Background(), &attest.VerifyRequest{
				Extension: pkix.Extension{Id: attest.OIDEvidenceKVM, Critical: tc.critical, Value: tc.value},
				Debug:     tc.debug,
			})
			if tc.code != "" {
				r, ok := attest.AsRejection(err)
				if !ok || r.Code != tc.code {
					t.Fatalf("err = %v, want rejection %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != attest.KindNone || c.HardwareBacked || !c.Debug || len(c.Measurement) != 0 {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}
