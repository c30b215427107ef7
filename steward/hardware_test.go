package steward_test

import (
	"bytes"
	"crypto/elliptic"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/sgx"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// TestRecordedSGXEvidence replays real SGX evidence through a production
// (not self-issued) Steward over HTTP: with the verification clock pinned
// to when the collateral was valid it is issued and the certificate records
// the enclave; with the wall clock the expired collateral is rejected with
// a verifier code. Issuance always uses the wall clock.
func TestRecordedSGXEvidence(t *testing.T) {
	var file struct {
		SGX *sgx.Policy `toml:"sgx"`
	}
	if err := toml.Unmarshal(vectors.StewardTOML, &file); err != nil {
		t.Fatal(err)
	}
	v, err := sgx.New(sgx.Options{Policy: file.SGX})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := stewardtest.ProductionCA(t, elliptic.P256())
	_, pinned := newServer(t, steward.Config{CA: ca, Verifiers: []attest.Verifier{v},
		VerifyTime: func() time.Time { return vectors.Time }})
	_, wall := newServer(t, steward.Config{CA: ca, Verifiers: []attest.Verifier{v}})

	start := time.Now().Truncate(time.Second)
	r := post(t, pinned.URL, steward.ContentTypePKCS10, bytes.NewReader(vectors.SGXi5CSR))
	if r.status != http.StatusOK {
		t.Fatalf("pinned clock: %d %s", r.status, r.body)
	}
	leaf := parseChain(t, r.body)[2]
	if leaf.NotBefore.Before(start.Add(-steward.Backdate)) {
		t.Fatalf("notBefore %v is not the wall clock", leaf.NotBefore)
	}
	_, a, err := certext.FromCertificate(leaf)
	if err != nil || a == nil {
		t.Fatalf("attested-as: %v", err)
	}
	if a.Claims.Kind != attest.KindSGX || !a.Claims.HardwareBacked || a.StewardDebug ||
		hex.EncodeToString(a.Claims.Measurement) != "4046ea255f0455131a024e1265ac1ebd131fdbd1240f1712a00381f6f04e8c15" {
		t.Fatalf("claims %+v", a)
	}

	r = post(t, wall.URL, steward.ContentTypePKCS10, bytes.NewReader(vectors.SGXi5CSR))
	t.Logf("wall clock: %d %s", r.status, r.body)
	if r.status != http.StatusBadRequest || !strings.HasPrefix(string(r.body), "sgx.") {
		t.Fatalf("wall clock: %d %q, want an sgx.* rejection", r.status, r.body)
	}
}
