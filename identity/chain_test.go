package identity

import (
	"os"
	"testing"
)

func TestParseChainUpstreamPkiPath(t *testing.T) {
	der, err := os.ReadFile("testdata/upstream/milan.pkipath")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseChain(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[0].Subject.CommonName != "ARK-Milan" || certs[1].Subject.CommonName != "SEV-Milan" {
		t.Fatalf("parsed %d certificates: %v", len(certs), certs)
	}
	if err := certs[1].CheckSignatureFrom(certs[0]); err != nil {
		t.Fatalf("root-first order: %v", err)
	}
	if lf := leafFirst(certs); lf[0] != certs[1] || lf[1] != certs[0] {
		t.Fatal("leafFirst does not reverse")
	}
}
