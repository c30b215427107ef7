package tdx

// The emulated fixture: a TDX quote v4 with its PCK chain, CRLs, TCB Info
// and QE Identity under a test Intel-like hierarchy (evidence/emulated's:
// Root CA → PCK Platform CA → PCK certificate with the SGX extension, Root
// CA → TCB Signing; an attestation key the QE report, signed by the PCK
// key, commits to), its REPORTDATA binding a fixed P-384 CSR key. Unlike
// go-tdx-guest's real sample, it reaches the verifier's accept path. It is
// injected as the existing emulated tests do, through Options.Roots and
// Options.EmulatedRoots; production trust roots are untouched.
//
// Everything is fixed in testdata/emulated, so the evidence and fuzz
// corpus entries made from it mean the same on every run:
//
//	tdx-root.pem  the hierarchy's keys and certificates (emulated.TDXRootFile)
//	csr-key.pem   the P-384 CSR key REPORTDATA binds (PKCS #8)
//	evidence.der  the TdxEvidence, current at fixtureTime
//
// To regenerate evidence.der from the stored keys (delete the .pem files
// first for new keys), then the fuzz seeds made from it:
//
//	go test -run '^TestEmulatedFixture$' -update ./attestation/tdx/
//	UPDATE_FUZZ_SEEDS=1 go test -run '^FuzzVerifyAccept$' ./attestation/tdx/

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/evidence/emulated"
)

var update = flag.Bool("update", false, "regenerate testdata/emulated/evidence.der (and missing keys)")

var fixtureDir = filepath.Join("testdata", "emulated")

const (
	fixtureCSRKeyFile   = "csr-key.pem"
	fixtureEvidenceFile = "evidence.der"
	// signedLen is what the quote signature covers: header and TD body.
	signedLen = 48 + 584
)

// fixtureTD is the emulated TD: distinct, recognisable measurements.
var fixtureTD = func() emulated.TDXOptions {
	var o emulated.TDXOptions
	copy(o.MRTD[:], bytes.Repeat([]byte{0x11}, 48))
	for i := range o.RTMRs {
		copy(o.RTMRs[i][:], bytes.Repeat([]byte{byte(0x20 + i)}, 48))
	}
	return o
}()

// fixtureTime is the verification time: an hour after the hierarchy was
// made (its certificates' NotBefore is an hour before that); the
// collateral is current for a week from it.
func fixtureTime(r *emulated.TDXRoot) time.Time { return r.Root.NotBefore.Add(2 * time.Hour) }

// fixtureKeys are the hierarchy's private keys, found by their
// certificates; att is the one no certificate holds.
type fixtureKeys struct{ root, pckCA, pck, tcb, att *ecdsa.PrivateKey }

type fixture struct {
	root     *emulated.TDXRoot
	keys     fixtureKeys
	csrKey   *ecdsa.PrivateKey
	evidence []byte // the genuine TdxEvidence DER
	now      time.Time
}

func loadFixture(t testing.TB) *fixture {
	t.Helper()
	root, keys := loadFixtureRoot(t)
	csrKey := loadFixtureCSRKey(t)
	ev, err := os.ReadFile(filepath.Join(fixtureDir, fixtureEvidenceFile))
	if err != nil {
		t.Fatalf("reading the TDX fixture (regenerate: go test -run '^TestEmulatedFixture$' -update): %v", err)
	}
	return &fixture{root: root, keys: keys, csrKey: csrKey, evidence: ev, now: fixtureTime(root)}
}

func loadFixtureRoot(t testing.TB) (*emulated.TDXRoot, fixtureKeys) {
	t.Helper()
	p := filepath.Join(fixtureDir, emulated.TDXRootFile)
	if _, err := os.Stat(p); err != nil && !(*update && errors.Is(err, fs.ErrNotExist)) {
		t.Fatalf("the TDX fixture hierarchy: %v", err)
	}
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := emulated.LoadOrCreateTDXRoot(fixtureDir) // creates only under -update (checked above)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var keys fixtureKeys
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		if blk.Type != "PRIVATE KEY" {
			continue
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			t.Fatalf("%s: a %T key", p, k)
		}
		slot := &keys.att
		for _, c := range []struct {
			cert *x509.Certificate
			key  **ecdsa.PrivateKey
		}{{root.Root, &keys.root}, {root.PCKCA, &keys.pckCA}, {root.PCK, &keys.pck}, {root.TCBSigning, &keys.tcb}} {
			if ek.PublicKey.Equal(c.cert.PublicKey) {
				slot = c.key
			}
		}
		*slot = ek
	}
	if keys.root == nil || keys.pckCA == nil || keys.pck == nil || keys.tcb == nil || keys.att == nil {
		t.Fatalf("%s lacks a key of the hierarchy", p)
	}
	return root, keys
}

func loadFixtureCSRKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	p := filepath.Join(fixtureDir, fixtureCSRKeyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) && *update {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatalf("the TDX fixture CSR key: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P384() {
		t.Fatalf("%s: not a P-384 key", p)
	}
	return ek
}

func spkiOf(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return spki
}

// reportData is the REPORTDATA binding the fixture's CSR key.
func (f *fixture) reportData(t testing.TB) [64]byte {
	return attest.ReportData(attest.KindTDX, spkiOf(t, f.csrKey))
}

// decode returns a fresh copy of the genuine evidence, to change.
func (f *fixture) decode(t testing.TB) *envelope.TdxEvidence {
	t.Helper()
	ev, err := envelope.DecodeTdxEvidence(f.evidence)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func marshal(t testing.TB, ev *envelope.TdxEvidence) []byte {
	t.Helper()
	der, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// request is a verification of evidence (DER) for a CSR by key (the
// fixture's CSR key when nil), at the fixture time.
func (f *fixture) request(t testing.TB, evidence []byte, key *ecdsa.PrivateKey) *attest.VerifyRequest {
	t.Helper()
	if key == nil {
		key = f.csrKey
	}
	ext := pkix.Extension{Id: attest.OIDEvidenceTDX, Value: evidence}
	req, err := vectors.Request(key, ext, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// verifiers trust the fixture's root both ways a Verifier can: in place
// of Intel's (Roots) and beside it, selected by the quote's chain
// (EmulatedRoots, as a Steward policy naming an emulated root does).
func (f *fixture) verifiers(t testing.TB, p *Policy) map[string]*Verifier {
	t.Helper()
	out := map[string]*Verifier{}
	for name, o := range map[string]Options{
		"Roots":         {Policy: p, Roots: []*x509.Certificate{f.root.Root}},
		"EmulatedRoots": {Policy: p, EmulatedRoots: []*x509.Certificate{f.root.Root}},
	} {
		v, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// rawSignRS signs SHA-256(msg) as Intel does: r ‖ s, 32 bytes each.
func rawSignRS(t testing.TB, k *ecdsa.PrivateKey, msg []byte) []byte {
	t.Helper()
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
}

// resignDoc changes the signed body (member field) of a PCS document with
// change and signs the result with the fixture's TCB Signing key: what
// Intel would publish, so only the content can be what is refused.
func (f *fixture) resignDoc(t testing.TB, doc []byte, field string, change func([]byte) []byte) []byte {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(doc, &outer); err != nil {
		t.Fatal(err)
	}
	body := change(bytes.Clone(outer[field]))
	sig := rawSignRS(t, f.keys.tcb, body)
	return []byte(`{"` + field + `":` + string(body) + `,"signature":"` + hex.EncodeToString(sig) + `"}`)
}

// resignPCKCRL replaces the PCK CA's CRL with one signed by its key that
// revokes serials (none: a genuine CRL, re-signed).
func (f *fixture) resignPCKCRL(t testing.TB, ev *envelope.TdxEvidence, revoke ...*x509.Certificate) {
	t.Helper()
	for i, e := range ev.CRLs {
		old, err := x509.ParseRevocationList(e.CRL)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(old.RawIssuer, f.root.PCKCA.RawSubject) {
			continue
		}
		tmpl := &x509.RevocationList{Number: old.Number, ThisUpdate: old.ThisUpdate, NextUpdate: old.NextUpdate}
		for _, c := range revoke {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: old.ThisUpdate})
		}
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, f.root.PCKCA, f.keys.pckCA)
		if err != nil {
			t.Fatal(err)
		}
		ev.CRLs[i].CRL = der
		return
	}
	t.Fatal("the fixture has no PCK CRL")
}

// TestEmulatedFixture regenerates the fixture under -update; otherwise it
// checks that its parts belong together: the quote carries the stored
// hierarchy's chain and attestation key, the collateral is current at the
// fixture time, and REPORTDATA binds the stored CSR key.
func TestEmulatedFixture(t *testing.T) {
	if *update {
		root, _ := loadFixtureRoot(t)
		csrKey := loadFixtureCSRKey(t)
		ev, err := root.Evidence(attest.ReportData(attest.KindTDX, spkiOf(t, csrKey)), fixtureTD, fixtureTime(root))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fixtureDir, fixtureEvidenceFile), marshal(t, ev), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := loadFixture(t)
	ev := f.decode(t)
	_, quote, err := decode(f.request(t, f.evidence, nil))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCollateral(ev, quote)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*x509.Certificate{f.root.PCK, f.root.PCKCA, f.root.Root} {
		if !c.pck[i].Equal(want) {
			t.Errorf("PCK chain certificate %d is not %s's", i, emulated.TDXRootFile)
		}
	}
	if !c.tcbChain[0].Equal(f.root.TCBSigning) || !c.qeChain[0].Equal(f.root.TCBSigning) {
		t.Errorf("the collateral is not signed by %s's TCB Signing certificate", emulated.TDXRootFile)
	}
	att, err := f.keys.att.PublicKey.Bytes() // 0x04 ‖ X ‖ Y; the quote carries X ‖ Y
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(quote.GetSignedData().GetEcdsaAttestationKey(), att[1:]) {
		t.Error("the quote's attestation key is not the stored one")
	}
	if rd := f.reportData(t); !bytes.Equal(quote.GetTdQuoteBody().GetReportData(), rd[:]) {
		t.Errorf("REPORTDATA does not bind %s", fixtureCSRKeyFile)
	}
	if err := c.checkSigned(f.now); err != nil {
		t.Errorf("collateral at the fixture time %s: %v", f.now, err)
	}
}
