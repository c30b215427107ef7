package envelope_test

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
)

func TestDecodeSnpEvidenceMilan(t *testing.T) {
	der := vectors.Evidence(vectors.MilanCSR)
	e, err := envelope.DecodeSnpEvidence(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Report) != envelope.SNPReportSize || e.Report[0] != 2 {
		t.Fatalf("report: len %d version %d", len(e.Report), e.Report[0])
	}
	if len(e.CRLs) != 2 {
		t.Fatalf("got %d CRLs, want 2", len(e.CRLs))
	}
	if _, ok := e.CRLs.Lookup("https://kdsintf.amd.com/vcek/v1/Milan/crl"); !ok {
		t.Errorf("Milan CRL missing: %v", e.CRLs)
	}
	if _, ok := e.CRLs.Lookup("https://kdsintf.amd.com/vcek/v1/Genoa/crl"); !ok {
		t.Errorf("Genoa CRL missing")
	}
	back, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, der) {
		t.Fatal("re-encoding is not byte-identical")
	}
}

func TestDecodeSgxEvidence(t *testing.T) {
	for name, csr := range map[string][]byte{"i5": vectors.SGXi5CSR, "xeon": vectors.SGXXeonCSR} {
		t.Run(name, func(t *testing.T) {
			der := vectors.Evidence(csr)
			e, err := envelope.DecodeSgxEvidence(der)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Quote) < 436 || e.Quote[0] != 3 {
				t.Fatalf("quote: len %d", len(e.Quote))
			}
			if len(e.CRLs) != 3 {
				t.Errorf("got %d CRLs, want 3", len(e.CRLs))
			}
			if len(e.TCB.Certs) != 2 || !bytes.HasPrefix(e.TCB.Report, []byte(`{"tcbInfo":`)) {
				t.Errorf("tcb: %d certs, report %.20q", len(e.TCB.Certs), e.TCB.Report)
			}
			if !bytes.Equal(e.TCB.Certs[1], vectors.IntelRoot) {
				t.Error("TCB chain[1] is not the Intel root")
			}
			back, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, der) {
				t.Fatal("re-encoding is not byte-identical")
			}
			// The parts decode standalone too.
			l, _ := e.CRLs.Marshal()
			if got, err := envelope.DecodeCrlList(l); err != nil || len(got) != 3 {
				t.Fatalf("envelope.DecodeCrlList: %v", err)
			}
			p, _ := e.TCB.Marshal()
			if got, err := envelope.DecodeTcbPackage(p); err != nil || !bytes.Equal(got.Report, e.TCB.Report) {
				t.Fatalf("envelope.DecodeTcbPackage: %v", err)
			}
		})
	}
}

func TestTdxEvidenceRoundTrip(t *testing.T) {
	sgx, err := envelope.DecodeSgxEvidence(vectors.Evidence(vectors.SGXi5CSR))
	if err != nil {
		t.Fatal(err)
	}
	in := &envelope.TdxEvidence{Quote: []byte{4, 0, 2, 0}, CRLs: sgx.CRLs[:2], TCB: sgx.TCB,
		QEIdentity: envelope.TcbPackage{Certs: sgx.TCB.Certs, Report: []byte(`{"enclaveIdentity":{}}`)}}
	der, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := envelope.DecodeTdxEvidence(der)
	if err != nil {
		t.Fatal(err)
	}
	again, err := out.Marshal()
	if err != nil || !bytes.Equal(again, der) {
		t.Fatalf("round trip: %v", err)
	}
	// An envelope.SgxEvidence is not a envelope.TdxEvidence (missing qeIdentity) and vice versa.
	if _, err := envelope.DecodeTdxEvidence(vectors.Evidence(vectors.SGXi5CSR)); err == nil {
		t.Error("envelope.SgxEvidence decoded as envelope.TdxEvidence")
	}
	if _, err := envelope.DecodeSgxEvidence(der); err == nil {
		t.Error("envelope.TdxEvidence decoded as envelope.SgxEvidence")
	}
}

func TestStrictness(t *testing.T) {
	snp := vectors.Evidence(vectors.MilanCSR)
	sgx := vectors.Evidence(vectors.SGXi5CSR)
	decoders := map[string]func([]byte) error{
		"snp": func(b []byte) error { _, err := envelope.DecodeSnpEvidence(b); return err },
		"sgx": func(b []byte) error { _, err := envelope.DecodeSgxEvidence(b); return err },
		"tdx": func(b []byte) error { _, err := envelope.DecodeTdxEvidence(b); return err },
		"crl": func(b []byte) error { _, err := envelope.DecodeCrlList(b); return err },
		"tcb": func(b []byte) error { _, err := envelope.DecodeTcbPackage(b); return err },
	}
	mutate := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	cases := map[string]struct {
		dec string
		in  []byte
	}{
		"snp trailing":         {"snp", append(bytes.Clone(snp), 0)},
		"snp truncated":        {"snp", snp[:len(snp)-1]},
		"snp empty":            {"snp", nil},
		"snp wrong outer tag":  {"snp", mutate(snp, 0, 0x31)},
		"snp wrong inner tag":  {"snp", mutate(snp, 4, 0x31)},
		"snp report too short": {"snp", shortenSNPReport(t, snp)},
		"sgx trailing":         {"sgx", append(bytes.Clone(sgx), 0, 0)},
		"sgx truncated":        {"sgx", sgx[:100]},
		"sgx quote tag":        {"sgx", mutate(sgx, 4, 0x05)},
		"sgx non-minimal len":  {"sgx", append([]byte{0x30, 0x84, 0, 0, byte(len(sgx[4:]) >> 8), byte(len(sgx[4:]))}, sgx[4:]...)},
		"sgx as snp":           {"snp", sgx},
		"snp as sgx":           {"sgx", snp},
		"crl list not seq":     {"crl", []byte{0x04, 0}},
		"crl entry bad url":    {"crl", []byte{0x30, 0x0b, 0x30, 0x09, 0x30, 0x07, 0x0c, 0x01, 0xff, 0x30, 0x02, 0x05, 0x00}},
		"crl entry int url":    {"crl", []byte{0x30, 0x0b, 0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x01, 0x30, 0x02, 0x05, 0x00}},
		"crl entry extra":      {"crl", []byte{0x30, 0x0d, 0x30, 0x0b, 0x30, 0x09, 0x0c, 0x01, 'a', 0x30, 0x02, 0x05, 0x00, 0x05, 0x00}},
		"tcb cert not seq":     {"tcb", []byte{0x30, 0x06, 0x30, 0x02, 0x05, 0x00, 0x04, 0x00}},
		"tcb missing report":   {"tcb", []byte{0x30, 0x02, 0x30, 0x00}},
		"oversized":            {"sgx", make([]byte, envelope.MaxEvidenceSize+1)},
	}
	for name, c := range cases {
		if err := decoders[c.dec](c.in); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if err := decoders["sgx"](make([]byte, envelope.MaxEvidenceSize+1)); !errors.Is(err, envelope.ErrTooLarge) {
		t.Errorf("oversized: %v, want envelope.ErrTooLarge", err)
	}
	// Too many CRLs.
	many := make(envelope.CrlList, envelope.MaxCRLs+1)
	for i := range many {
		many[i] = envelope.CrlListEntry{URL: "u", CRL: []byte{0x30, 0}}
	}
	if _, err := many.Marshal(); !errors.Is(err, envelope.ErrTooLarge) {
		t.Errorf("Marshal of %d CRLs: %v", len(many), err)
	}
}

// shortenSNPReport re-encodes the Milan evidence with a 1183-byte report.
func shortenSNPReport(t *testing.T, der []byte) []byte {
	e, err := envelope.DecodeSnpEvidence(der)
	if err != nil {
		t.Fatal(err)
	}
	e.Report = e.Report[:envelope.SNPReportSize-1]
	if _, err := e.Marshal(); err == nil {
		t.Fatal("Marshal accepted a short report")
	}
	// Build it by hand: patch the OCTET STRING length.
	i := bytes.Index(der, []byte{0x04, 0x82, 0x04, 0xa0})
	if i < 0 {
		t.Fatal("report OCTET STRING not found")
	}
	out := bytes.Clone(der[:i])
	out = append(out, 0x04, 0x82, 0x04, 0x9f)
	out = append(out, der[i+4:len(der)-1]...)
	// Fix the outer SEQUENCE length (0x30 0x82 hi lo).
	n := len(out) - 4
	out[2], out[3] = byte(n>>8), byte(n)
	return out
}

func TestMarshalRejectsBadElements(t *testing.T) {
	e := &envelope.SnpEvidence{VCEK: []byte{0x04, 0x00}, Report: make([]byte, envelope.SNPReportSize)}
	if _, err := e.Marshal(); err == nil {
		t.Error("Marshal accepted a VCEK that is not a SEQUENCE")
	}
	e.VCEK = []byte{0x30, 0x00, 0x00}
	if _, err := e.Marshal(); err == nil {
		t.Error("Marshal accepted a VCEK with trailing bytes")
	}
	p := envelope.TcbPackage{Certs: [][]byte{{0x02, 0x01, 0x00}}}
	if _, err := p.Marshal(); err == nil {
		t.Error("Marshal accepted a certificate that is not a SEQUENCE")
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from the real vectors when
// ENVELOPE_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("ENVELOPE_WRITE_SEEDS") != "1" {
		t.Skip("set ENVELOPE_WRITE_SEEDS=1 to regenerate seeds")
	}
	sgx, _ := envelope.DecodeSgxEvidence(vectors.Evidence(vectors.SGXi5CSR))
	crl, _ := sgx.CRLs.Marshal()
	tcb, _ := sgx.TCB.Marshal()
	tdx, _ := (&envelope.TdxEvidence{Quote: []byte{4, 0}, CRLs: sgx.CRLs, TCB: sgx.TCB, QEIdentity: sgx.TCB}).Marshal()
	seeds := map[string][]byte{
		"FuzzDecodeSnpEvidence": vectors.Evidence(vectors.MilanCSR),
		"FuzzDecodeSgxEvidence": vectors.Evidence(vectors.SGXXeonCSR),
		"FuzzDecodeTdxEvidence": tdx,
		"FuzzDecodeCrlList":     crl,
		"FuzzDecodeTcbPackage":  tcb,
	}
	for name, b := range seeds {
		dir := "testdata/fuzz/" + name
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(dir+"/real", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
