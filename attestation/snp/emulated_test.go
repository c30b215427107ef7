package snp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/snp"
	"github.com/enarx-go/enarx/attestation/snp/snptest"
)

// emulated builds evidence from the Milan report template, re-signed by an
// emulated VCEK after mutate, for a fresh P-384 CSR key.
type emulated struct {
	t    *testing.T
	fake *snptest.Fake
	now  time.Time
}

func newEmulated(t *testing.T, askSerial int64) *emulated {
	e, err := envelope.DecodeSnpEvidence(vectors.Evidence(vectors.MilanCSR))
	if err != nil {
		t.Fatal(err)
	}
	var hwid [64]byte
	copy(hwid[:], e.Report[0x1A0:0x1E0])
	cfg := snptest.Config{
		Created: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC),
		TCB:     kds.TCBParts{BlSpl: 2, SnpSpl: 6, UcodeSpl: 93},
		HWID:    hwid,
	}
	if askSerial != 0 {
		cfg.ASKSerial = bigInt(askSerial)
	}
	f, err := snptest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &emulated{t: t, fake: f, now: vectors.Time}
}

func (m *emulated) verifier(p *snp.Policy) *snp.Verifier {
	v, err := snp.New(snp.Options{Policy: p, Roots: []snp.Root{m.fake.Root()}})
	if err != nil {
		m.t.Fatal(err)
	}
	return v
}

func (m *emulated) request(mutate func(r []byte), crl []byte) *attest.VerifyRequest {
	t := m.t
	e, err := envelope.DecodeSnpEvidence(vectors.Evidence(vectors.MilanCSR))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData(attest.KindSNP, spki)
	report := e.Report
	copy(report[0x50:0x90], rd[:])
	if mutate != nil {
		mutate(report)
	}
	if err := m.fake.Sign(report); err != nil {
		t.Fatal(err)
	}
	if crl == nil {
		if crl, err = m.fake.CRL(m.now.Add(-24*time.Hour), m.now.Add(30*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := m.fake.Evidence(report, envelope.CrlList{{URL: m.fake.CRLURL(), CRL: crl}})
	if err != nil {
		t.Fatal(err)
	}
	ext := snptest.Extension(ev)
	der, err := vectors.CSRWithKey(key, ext)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.VerifyRequest{CSR: csr, Extension: ext, Now: m.now}
}

func TestEmulatedAccepted(t *testing.T) {
	m := newEmulated(t, 0)
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
	m := newEmulated(t, 0)
	now := m.now
	revoking, err := m.fake.CRL(now.Add(-time.Hour), now.Add(time.Hour), m.fake.ASKSerial())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := m.fake.CRL(now.Add(-48*time.Hour), now.Add(-time.Hour))
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
				r[off+6] = 7 // SNP SPL 7 everywhere; the VCEK says 6
			}
		}, nil, snp.CodeTCBVCEKMismatch},
		{"CHIP_ID not the VCEK's", func(r []byte) { r[0x1A0] ^= 1 }, nil, snp.CodeReportChipID},
		{"VMPL 1", func(r []byte) { r[0x30] = 1 }, nil, snp.CodeReportVMPL},
		{"MIGRATE_MA", func(r []byte) { r[0x0A] |= 1 << 2 }, nil, snp.CodeReportMigrateMA},
		{"HOST_DATA", func(r []byte) { r[0xC0] = 1 }, nil, snp.CodeReportZeroFields},
		{"provisional firmware", func(r []byte) { r[0x38+6] = 7 }, nil, snp.CodeTCBProvisional},
		{"guest ABI above firmware", func(r []byte) { r[0x08] = 52 }, nil, snp.CodeReportABIFirmware},
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

func bigInt(v int64) *big.Int { return big.NewInt(v) }
