package snp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/snp"
	"github.com/enarx-go/enarx/evidence/emulated"
)

// emulatedChain builds evidence from reports of the emulated AMD hierarchy
// (evidence/emulated), changed by mutate and re-signed, for a fresh P-384
// CSR key, verified now.
type emulatedChain struct {
	t    *testing.T
	root *emulated.SNPRoot
	now  time.Time
}

var (
	snpRootOnce sync.Once
	snpRoot     *emulated.SNPRoot
	snpRootErr  error
)

// emulatedRoot is one emulated hierarchy per test binary (two RSA-4096
// keys take seconds).
func emulatedRoot(t testing.TB) *emulated.SNPRoot {
	t.Helper()
	snpRootOnce.Do(func() { snpRoot, snpRootErr = emulated.NewSNPRoot() })
	if snpRootErr != nil {
		t.Fatal(snpRootErr)
	}
	return snpRoot
}

func newEmulated(t *testing.T) *emulatedChain {
	return &emulatedChain{t: t, root: emulatedRoot(t), now: time.Now()}
}

func (m *emulatedChain) verifier(p *snp.Policy) *snp.Verifier {
	r := m.root
	v, err := snp.New(snp.Options{Policy: p, Roots: []snp.Root{{ProductLine: emulated.ProductLine, ARK: r.ARK, ASK: r.ASK, Emulated: true}}})
	if err != nil {
		m.t.Fatal(err)
	}
	return v
}

func (m *emulatedChain) request(mutate func(r []byte), crl []byte) *attest.VerifyRequest {
	t := m.t
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	report, err := m.root.SignReport(attest.ReportData(attest.KindSNP, spki), emulated.SNPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(report)
		if err := m.root.Sign(report); err != nil {
			t.Fatal(err)
		}
	}
	if crl == nil {
		if crl, err = m.root.SignCRL(m.now.Add(-24*time.Hour), m.now.Add(30*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := (&envelope.SnpEvidence{VCEK: m.root.VCEK.Raw, CRLs: envelope.CrlList{{URL: emulated.CRLURL(), CRL: crl}}, Report: report}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ext := pkix.Extension{Id: attest.OIDEvidenceSNP, Value: ev}
	req, err := vectors.Request(key, ext, m.now)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestEmulatedAccepted(t *testing.T) {
	m := newEmulated(t)
	c, err := m.verifier(nil).Verify(context.Background(), m.request(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HardwareBacked {
		t.Error("emulated root recorded as hardware-backed")
	}
	// AMD's roots reject the emulated chain.
	v, err := snp.New(snp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), m.request(nil, nil)); !hasCode(err, snp.CodeVCEKChain) {
		t.Fatalf("AMD roots: %v", err)
	}
	// v3 reports are accepted by default and rejected when the policy says so.
	v3 := func(r []byte) { binary.LittleEndian.PutUint32(r[0:], 3) }
	if _, err := m.verifier(nil).Verify(context.Background(), m.request(v3, nil)); err != nil {
		t.Fatalf("v3: %v", err)
	}
	if _, err := m.verifier(&snp.Policy{MaxReportVersion: 2}).Verify(context.Background(), m.request(v3, nil)); !hasCode(err, snp.CodeReportVersion) {
		t.Fatalf("v3 with max 2: %v", err)
	}
}

func hasCode(err error, code string) bool {
	r, ok := attest.AsRejection(err)
	return ok && r.Code == code
}

func TestEmulatedRejections(t *testing.T) {
	m := newEmulated(t)
	now := m.now
	revoking, err := m.root.SignCRL(now.Add(-time.Hour), now.Add(time.Hour), m.root.ASK.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := m.root.SignCRL(now.Add(-48*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(r []byte)
		crl    []byte
		code   string
	}{
		{"DEBUG policy bit", func(r []byte) { r[0x0A] |= 1 << 3 }, nil, snp.CodePolicyDebug},
		{"revoked ASK", nil, revoking, snp.CodeCRLRevoked},
		{"expired CRL", nil, expired, snp.CodeCRLExpired},
		{"REPORTED_TCB not the VCEK's", func(r []byte) {
			for _, off := range []int{0x38, 0x180, 0x1E0, 0x1F0} {
				r[off+6] = 7 // SNP SPL 7 everywhere; the VCEK says 8
			}
		}, nil, snp.CodeTCBVCEKMismatch},
		{"CHIP_ID not the VCEK's", func(r []byte) { r[0x1A0] ^= 1 }, nil, snp.CodeReportChipID},
		{"VMPL 1", func(r []byte) { r[0x30] = 1 }, nil, snp.CodeReportVMPL},
		{"MIGRATE_MA", func(r []byte) { r[0x0A] |= 1 << 2 }, nil, snp.CodeReportMigrateMA},
		{"HOST_DATA", func(r []byte) { r[0xC0] = 1 }, nil, snp.CodeReportZeroFields},
		{"provisional firmware", func(r []byte) { r[0x38+6] = 7 }, nil, snp.CodeTCBProvisional},
		{"guest ABI above firmware", func(r []byte) { r[0x08] = 56 }, nil, snp.CodeReportABIFirmware}, // firmware 1.55
		{"VLEK signer", func(r []byte) { r[0x48] = 1 | 1<<2 }, nil, snp.CodeReportSigningKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.verifier(nil).Verify(context.Background(), m.request(c.mutate, c.crl))
			if !hasCode(err, c.code) {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
	// Debug mode accepts the DEBUG bit and reports it.
	req := m.request(func(r []byte) { r[0x0A] |= 1 << 3 }, nil)
	req.Debug = true
	c, err := m.verifier(nil).Verify(context.Background(), req)
	if err != nil || !c.Debug {
		t.Fatalf("debug mode: %v %+v", err, c)
	}
}

// TestEmulatedLaunchTCBBelowReported: a guest launched under older firmware
// keeps its LAUNCH_TCB (here SNP SPL 7) after the host raised the platform
// to REPORTED_TCB SNP SPL 8 (a firmware hot update); the report is
// otherwise consistent. A minimum on REPORTED_TCB alone passes it, a
// minimum on LAUNCH_TCB refuses it naming the component, and a launch
// minimum the guest meets passes.
func TestEmulatedLaunchTCBBelowReported(t *testing.T) {
	m := newEmulated(t)
	oldLaunch := func(r []byte) { r[0x1F0+6] = 7 } // LAUNCH_TCB SNP SPL
	reported := kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}
	if _, err := m.verifier(&snp.Policy{MinimumTCB: reported}).Verify(context.Background(), m.request(oldLaunch, nil)); err != nil {
		t.Fatalf("REPORTED_TCB minimum only: %v", err)
	}
	_, err := m.verifier(&snp.Policy{MinimumTCB: reported, MinimumLaunchTCB: reported}).Verify(context.Background(), m.request(oldLaunch, nil))
	if !hasCode(err, snp.CodeTCBLaunchMinimum) || !strings.Contains(err.Error(), "snp SPL 7 is below 8") {
		t.Fatalf("launch minimum 8: got %v, want %s naming the snp component", err, snp.CodeTCBLaunchMinimum)
	}
	met := reported
	met.SnpSpl = 7
	if _, err := m.verifier(&snp.Policy{MinimumTCB: reported, MinimumLaunchTCB: met}).Verify(context.Background(), m.request(oldLaunch, nil)); err != nil {
		t.Fatalf("launch minimum 7: %v", err)
	}
}
