package emulated

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

var (
	rootOnce sync.Once
	root     *SNPRoot
	rootErr  error
)

// testRoot generates one hierarchy per test binary (RSA-4096 is slow) and
// exercises the save/load path with it.
func testRoot(t *testing.T) *SNPRoot {
	t.Helper()
	rootOnce.Do(func() {
		dir := t.TempDir()
		root, rootErr = LoadOrCreateSNPRoot(dir)
		if rootErr != nil {
			return
		}
		var again *SNPRoot
		again, rootErr = LoadOrCreateSNPRoot(dir)
		if rootErr == nil && (!bytes.Equal(again.ARK.Raw, root.ARK.Raw) || again.ChipID != root.ChipID) {
			rootErr = errors.New("reloaded root differs from the generated one")
		}
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return root
}

// getter serves the CRL from the evidence, offline.
type getter map[string][]byte

func (g getter) Get(url string) ([]byte, error) {
	if b, ok := g[url]; ok {
		return b, nil
	}
	return nil, errors.New("offline: " + url)
}

func verifyOptions(r *SNPRoot, ev *envelope.SnpEvidence) *verify.Options {
	g := getter{}
	for _, c := range ev.CRLs {
		g[c.URL] = c.CRL
	}
	return &verify.Options{
		CheckRevocations: true, DisableCertFetching: true, Getter: g, Now: time.Now(),
		TrustedRoots: map[string][]*trust.AMDRootCerts{ProductLine: {{
			ProductLine: ProductLine, ProductCerts: &trust.ProductCerts{Ark: r.ARK, Ask: r.ASK},
		}}},
		Product: abi.DefaultSevProduct(),
	}
}

func TestEmulatedSNPEvidenceVerifiesWithGoSevGuest(t *testing.T) {
	r := testRoot(t)
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	rd := attest.ReportData(attest.KindSNP, spki)
	var m [48]byte
	copy(m[:], bytes.Repeat([]byte{0xab}, 48))
	p := &SNPProvider{Root: r, Options: SNPOptions{Measurement: m}}
	der, err := p.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := envelope.DecodeSnpEvidence(der)
	if err != nil {
		t.Fatalf("emulated evidence is not a valid SnpEvidence envelope: %v", err)
	}
	att := &spb.Attestation{CertificateChain: &spb.CertificateChain{VcekCert: ev.VCEK}}
	if att.Report, err = abi.ReportToProto(ev.Report); err != nil {
		t.Fatal(err)
	}
	if err := verify.SnpAttestation(att, verifyOptions(r, ev)); err != nil {
		t.Fatalf("go-sev-guest rejects emulated evidence: %v", err)
	}
	if err := validate.SnpAttestation(att, &validate.Options{
		ReportData: rd[:], Measurement: m[:], MinimumGuestSvn: 0,
		GuestPolicy:               abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, SMT: true},
		PermitProvisionalFirmware: true,
	}); err != nil {
		t.Fatalf("validate: %v", err)
	}

	// Default (real AMD) roots must reject it.
	o := verifyOptions(r, ev)
	o.TrustedRoots = nil
	if err := verify.SnpAttestation(att, o); err == nil {
		t.Fatal("emulated evidence verified against the real AMD roots")
	}
}

func TestEmulatedSNPDebugBit(t *testing.T) {
	r := testRoot(t)
	raw, err := r.SignReport([64]byte{}, SNPOptions{Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := abi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if !pol.Debug {
		t.Fatal("DEBUG policy bit not set")
	}
}

func TestCorruptRootFile(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSNPRoot(dir); err == nil {
		t.Fatal("corrupt root accepted")
	}
}
