package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

func testWorkload() certext.Workload {
	w := sha256.Sum256([]byte("wasm"))
	c := sha256.Sum256([]byte("toml"))
	return certext.Workload{WasmSHA256: w[:], ConfigSHA256: c[:]}
}

func TestSelfSigned(t *testing.T) {
	id, err := Establish(context.Background(), Request{Workload: testWorkload()})
	if err != nil {
		t.Fatal(err)
	}
	if id.StewardCA() != nil || id.CSR() != nil {
		t.Fatal("self-signed identity has a steward CA or CSR")
	}
	chain := id.Chain()
	if len(chain) != 1 {
		t.Fatalf("chain length %d, want 1", len(chain))
	}
	c := chain[0]
	if c.Subject.String() != "CN=localhost" || c.Issuer.String() != "CN=localhost" {
		t.Errorf("subject %q issuer %q", c.Subject, c.Issuer)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if n := len(c.SerialNumber.Bytes()); n != 16 || c.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %x: %d bytes", c.SerialNumber, n)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d != 365*24*time.Hour {
		t.Errorf("validity %v", d)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if !c.BasicConstraintsValid || c.IsCA {
		t.Error("basic constraints: want CA=false present")
	}
	if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU %v", c.ExtKeyUsage)
	}
	crit := map[string]bool{}
	for _, e := range c.Extensions {
		crit[e.Id.String()] = e.Critical
	}
	if !crit["2.5.29.15"] || !crit["2.5.29.19"] {
		t.Errorf("key usage and basic constraints must be critical: %v", crit)
	}
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "localhost" || len(c.IPAddresses) != 0 {
		t.Errorf("SANs %v %v, want DNS:localhost", c.DNSNames, c.IPAddresses)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want P-256", c.PublicKey)
	}
	tc := id.Certificate()
	if len(tc.Certificate) != 1 || tc.Leaf != c {
		t.Error("tls.Certificate does not hold the chain")
	}
	if _, ok := tc.PrivateKey.(*ecdsa.PrivateKey); ok {
		t.Error("tls.Certificate exposes the ecdsa private key")
	}
	if s := fmt.Sprintf("%v %+v %#v", tc.PrivateKey, tc.PrivateKey, tc.PrivateKey); s == "" || containsKeyDigits(s, id) {
		t.Errorf("formatting the key prints key material: %s", s)
	}
}

// containsKeyDigits reports whether s shows the private scalar in decimal.
func containsKeyDigits(s string, id *Identity) bool {
	d := id.signer.priv.D.String()
	return len(d) > 8 && contains(s, d[:8])
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

type fakeProvider struct {
	kind attest.Kind
	ev   []byte
	got  [64]byte
}

func (p *fakeProvider) Kind() attest.Kind { return p.kind }
func (p *fakeProvider) Evidence(_ context.Context, rd [64]byte) ([]byte, error) {
	p.got = rd
	return p.ev, nil
}

func TestKeyCurveFollowsEvidenceKind(t *testing.T) {
	for kind, curve := range map[attest.Kind]elliptic.Curve{
		attest.KindNone: elliptic.P256(),
		attest.KindSGX:  elliptic.P256(),
		attest.KindSNP:  elliptic.P384(),
		attest.KindTDX:  elliptic.P384(),
	} {
		id, err := Establish(context.Background(), Request{Evidence: &fakeProvider{kind: kind}, Workload: testWorkload()})
		if err != nil {
			t.Fatal(kind, err)
		}
		if got := id.PublicKey().(*ecdsa.PublicKey).Curve; got != curve {
			t.Errorf("%s: curve %s, want %s", kind, got.Params().Name, curve.Params().Name)
		}
		if id.Kind() != kind {
			t.Errorf("kind %s, want %s", id.Kind(), kind)
		}
	}
}

func TestEstablishRejectsBadRequests(t *testing.T) {
	ctx := context.Background()
	if _, err := Establish(ctx, Request{}); err == nil {
		t.Error("missing wasm digest accepted")
	}
	if _, err := Establish(ctx, Request{Evidence: &fakeProvider{kind: "nitro"}, Workload: testWorkload()}); err == nil {
		t.Error("unknown TEE kind accepted")
	}
	for _, u := range []string{"http://127.0.0.1:1/", "ftp://steward", "https://", "https://h/#frag", "::"} {
		if _, err := Establish(ctx, Request{Steward: u, Workload: testWorkload()}); err == nil {
			t.Errorf("steward URL %q accepted", u)
		}
	}
}
