package steward_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"testing"

	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/steward"
)

// TestPythonCSR: a CSR made by an independent implementation (Python's
// cryptography, Debian python3-cryptography, installed by
// scripts/install-deps.sh) with the KVM extension is issued in debug mode.
func TestPythonCSR(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import cryptography").CombinedOutput(); err != nil {
		t.Fatalf("%s with the cryptography module is required (run scripts/install-deps.sh): %v\n%s", python, err, out)
	}
	ca := debugCA(t)
	_, hs := newServer(t, steward.Config{CA: ca})
	for _, curve := range []string{"p256", "p384"} {
		t.Run(curve, func(t *testing.T) {
			cmd := exec.Command(python, "testdata/make_csr.py", curve)
			cmd.Stderr = os.Stderr
			der, err := cmd.Output()
			if err != nil {
				t.Fatalf("make_csr.py: %v", err)
			}
			r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			chain := parseChain(t, r.body)
			if len(chain) != 2 || chain[1].CheckSignatureFrom(ca.Chain[0]) != nil {
				t.Fatal("bad chain")
			}
			if _, a, err := certext.FromCertificate(chain[1]); err != nil || a == nil || !a.StewardDebug {
				t.Fatalf("attested-as %+v %v", a, err)
			}
		})
	}
}
