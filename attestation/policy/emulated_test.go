package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestEmulatedRootsOnlyWhenNamed(t *testing.T) {
	p, err := Parse([]byte("[snp]\nhash = [\"" + strings.Repeat("ab", 48) + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.EmulatedRoots()) != 0 {
		t.Fatal("emulated roots trusted without being named")
	}
	ark, ask, root := selfSigned(t, "ARK-Milan"), selfSigned(t, "SEV-Milan"), selfSigned(t, "Intel SGX Root CA")
	doc := "[snp]\nhash = [\"" + strings.Repeat("ab", 48) + "\"]\nemulated_root = '''\n" + ark + ask + "'''\n" +
		"[tdx]\nmrtd = [\"" + strings.Repeat("cd", 48) + "\"]\nallow_any_kernel = true\nemulated_root = '''\n" + root + "'''\n"
	p, err = Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.EmulatedRoots(); len(got) != 2 || !strings.Contains(got[0], "ARK-Milan") || !strings.Contains(got[1], "Intel SGX Root CA") {
		t.Fatalf("EmulatedRoots = %q", got)
	}
	if !p.SNPEmulatedRoots[0].Emulated {
		t.Fatal("SNP emulated root not marked emulated")
	}
	if _, err := p.Verifiers(Options{}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"snp one cert": "[snp]\nhash = [\"" + strings.Repeat("ab", 48) + "\"]\nemulated_root = '''\n" + ark + "'''\n",
		"snp not PEM":  "[snp]\nhash = [\"" + strings.Repeat("ab", 48) + "\"]\nemulated_root = \"nope\"\n",
		"tdx not PEM":  "[tdx]\nmrtd = [\"" + strings.Repeat("cd", 48) + "\"]\nallow_any_kernel = true\nemulated_root = \"nope\"\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "emulated_root") {
			t.Errorf("%s: want an error naming emulated_root, got %v", name, err)
		}
	}
}
