package quote

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(map[string][]byte{
		"icelake.signed.tcb.crl.single.i5.csr":  vectors.SGXi5CSR,
		"icelake.signed.tcb.crl.multi.xeon.csr": vectors.SGXXeonCSR,
	}[name])
	if err != nil {
		t.Fatal(err)
	}
	ev, err := envelope.DecodeSgxEvidence(csr.Extensions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return ev.Quote
}

func i5(t testing.TB) []byte   { return load(t, "icelake.signed.tcb.crl.single.i5.csr") }
func xeon(t testing.TB) []byte { return load(t, "icelake.signed.tcb.crl.multi.xeon.csr") }

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestRealQuotes checks decoded fields against the values steward.md §9.1
// lists for the two vectors.
func TestRealQuotes(t *testing.T) {
	for _, c := range []struct {
		name          string
		raw           []byte
		qeSVN, pceSVN uint16
		sigLen        int
		certs         int
	}{
		{"i5", i5(t), 9, 13, 4164, 3},
		{"xeon", xeon(t), 7, 12, 4297, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := Parse(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			h := q.Header
			if h.Version != 3 || h.AttestationKeyType != 2 || h.QESVN != c.qeSVN || h.PCESVN != c.pceSVN || h.QEVendorID != IntelQEVendorID {
				t.Errorf("header %+v", h)
			}
			r := q.ISVReport
			if got := hexOf(r.MRENCLAVE[:]); got != "4046ea255f0455131a024e1265ac1ebd131fdbd1240f1712a00381f6f04e8c15" {
				t.Errorf("MRENCLAVE %s", got)
			}
			if got := hexOf(r.MRSIGNER[:]); got != "7a49a07df0f8e90a6e1d9a63e3c696d9c844f0e3f8739b21daa640f99facc48a" {
				t.Errorf("MRSIGNER %s", got)
			}
			if r.Attributes != AttrInit|AttrMode64Bit || r.XFRM != 0xe7 || r.MiscSelect != MiscSelectEXINFO || r.ISVProdID != 0 || r.ISVSVN != 0 {
				t.Errorf("report body %+v", r)
			}
			if got := int(binary.LittleEndian.Uint32(c.raw[SignedSize:])); got != c.sigLen {
				t.Errorf("signature data length %d", got)
			}
			if len(q.QEAuthData) != 32 || q.CertDataType != CertDataPCKChain {
				t.Errorf("auth data %d bytes, cert data type %d", len(q.QEAuthData), q.CertDataType)
			}
			if !bytes.Equal(q.Signed, c.raw[:SignedSize]) || !bytes.Equal(q.QEReportRaw, c.raw[SignedSize+4+128:SignedSize+4+128+ReportBodySize]) {
				t.Error("signed ranges are wrong")
			}
			ders, err := q.PCKChain()
			if err != nil || len(ders) != c.certs {
				t.Fatalf("PCK chain: %d certs, %v", len(ders), err)
			}
			leaf, err := x509.ParseCertificate(ders[0])
			if err != nil || leaf.Subject.CommonName != "Intel SGX PCK Certificate" {
				t.Fatalf("PCK leaf %v, %v", leaf.Subject, err)
			}
		})
	}
}

// TestReportBodyLayout pins each field's offset with a distinct byte.
func TestReportBodyLayout(t *testing.T) {
	b := new([ReportBodySize]byte)
	for i := range b {
		b[i] = byte(i)
	}
	r := ParseReportBody(b)
	if r.CPUSVN[0] != 0 || r.MiscSelect != binary.LittleEndian.Uint32(b[16:]) || r.Attributes != binary.LittleEndian.Uint64(b[48:]) ||
		r.XFRM != binary.LittleEndian.Uint64(b[56:]) || r.MRENCLAVE[0] != 64 || r.MRSIGNER[0] != 128 || r.ConfigID[0] != 192 ||
		r.ISVProdID != binary.LittleEndian.Uint16(b[256:]) || r.ISVSVN != binary.LittleEndian.Uint16(b[258:]) ||
		r.ReportData[0] != byte(320&0xff) || r.ReportData[63] != byte(383&0xff) || r.ISVFamilyID[0] != byte(304&0xff) {
		t.Fatalf("layout: %+v", r)
	}
}

// TestPEMWithoutNewlines covers older QEs that glue PEM blocks together;
// encoding/pem alone would return only one certificate.
func TestPEMWithoutNewlines(t *testing.T) {
	q, err := Parse(i5(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := q.PCKChain()
	if err != nil {
		t.Fatal(err)
	}
	glued := bytes.ReplaceAll(q.CertData, []byte("-----END CERTIFICATE-----\n"), []byte("-----END CERTIFICATE-----"))
	if bytes.Equal(glued, q.CertData) {
		t.Fatal("test data has no newline to remove")
	}
	got, err := SplitPEMChain(append(glued, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatal("glued chain decodes differently")
	}
}

func TestSplitPEMChainRejects(t *testing.T) {
	q, err := Parse(xeon(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":          nil,
		"only nul":       {0, 0},
		"junk before":    append([]byte("junk"), q.CertData...),
		"junk after":     append(slices.Clone(q.CertData), "junk"...),
		"private key":    []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"unterminated":   q.CertData[:len(q.CertData)-10],
		"bad base64 pem": []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
		// encoding/pem skips a block it cannot decode and returns the next
		// one: the skipped text must not pass as part of the chain.
		"bad block before the chain":   append([]byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"), q.CertData...),
		"stray BEGIN before the chain": append([]byte("-----BEGIN CERTIFICATE-----\n"), q.CertData...),
		"broken key block first":       append([]byte("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n"), q.CertData...),
		"bad block inside the chain":   pemWithBlockAfterFirst(t, q.CertData, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
	} {
		if _, err := SplitPEMChain(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// pemWithBlockAfterFirst inserts text after the first PEM block of data.
func pemWithBlockAfterFirst(t *testing.T, data []byte, text string) []byte {
	t.Helper()
	end := []byte("-----END CERTIFICATE-----\n")
	i := bytes.Index(data, end)
	if i < 0 {
		t.Fatal("no PEM block end in the test data")
	}
	i += len(end)
	return slices.Concat(data[:i], []byte(text), data[i:])
}

func TestParseRejects(t *testing.T) {
	good := i5(t)
	mut := func(f func([]byte) []byte) []byte { return f(slices.Clone(good)) }
	for _, c := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"header only", good[:HeaderSize], ErrTruncated},
		{"one byte short", good[:len(good)-1], ErrTruncated},
		{"trailing byte", append(slices.Clone(good), 0), ErrTrailing},
		{"too large", make([]byte, MaxSize+1), ErrTooLarge},
		{"version 4", mut(func(b []byte) []byte { b[0] = 4; return b }), ErrUnsupported},
		{"key type 3", mut(func(b []byte) []byte { b[2] = 3; return b }), ErrUnsupported},
		{"tdx tee type", mut(func(b []byte) []byte { b[4] = 0x81; return b }), ErrUnsupported},
		{"huge sig length", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[SignedSize:], 0xffffffff); return b }), ErrTruncated},
		{"short sig length", mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[SignedSize:], binary.LittleEndian.Uint32(b[SignedSize:])-1)
			return b
		}), ErrTrailing},
		{"huge auth data", mut(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[SignedSize+4+576:], 0xffff); return b }), ErrTruncated},
		{"cert data type 6", mut(func(b []byte) []byte { b[SignedSize+4+578+32] = 6; return b }), ErrCertData},
		{"cert data short", mut(func(b []byte) []byte {
			o := SignedSize + 4 + 580 + 32
			binary.LittleEndian.PutUint32(b[o:], binary.LittleEndian.Uint32(b[o:])-1)
			return b
		}), ErrTrailing},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(make([]byte, MinSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Parse(b)
		if err != nil {
			return
		}
		if len(q.Signed) != SignedSize || len(q.QEReportRaw) != ReportBodySize || q.CertDataType != CertDataPCKChain {
			t.Fatalf("inconsistent quote: %d, %d, %d", len(q.Signed), len(q.QEReportRaw), q.CertDataType)
		}
		if q.Header.Version != Version || q.Header.AttestationKeyType != AttestationKeyECDSAP256 {
			t.Fatalf("unsupported header accepted: %+v", q.Header)
		}
		ders, err := q.PCKChain()
		if err == nil && len(ders) == 0 {
			t.Fatal("empty chain without error")
		}
	})
}
