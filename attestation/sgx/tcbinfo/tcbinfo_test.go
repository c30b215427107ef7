package tcbinfo

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
	return ev.TCB.Report
}

func i5(t testing.TB) []byte { return load(t, "icelake.signed.tcb.crl.single.i5.csr") }

func TestParseReal(t *testing.T) {
	for _, c := range []struct {
		name, fmspc string
		levels      int
		issue       string
		cpusvn      [Components]byte
		pcesvn      uint16
		status      string
		advisories  int
	}{
		{"icelake.signed.tcb.crl.single.i5.csr", "00706E470000", 11, "2023-01-25T18:31:04Z", [16]byte{6, 6, 2, 2, 2, 1, 4}, 10, StatusOutOfDate, 8},
		{"icelake.signed.tcb.crl.multi.xeon.csr", "00606A000000", 5, "2023-01-26T11:33:44Z", [16]byte{4, 4, 3, 3, 255, 255}, 11, StatusOutOfDate, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := load(t, c.name)
			s, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			// Upstream's fixed slicing gives the same signed bytes for
			// Intel's whitespace-free bodies.
			if !bytes.Equal(s.Raw, body[11:len(body)-144]) {
				t.Fatal("signed bytes differ from upstream's slice")
			}
			i := s.Info
			if i.FMSPC.String() != c.fmspc || len(i.TCBLevels) != c.levels || i.IssueDate.Format(time.RFC3339) != c.issue || i.Version != 3 {
				t.Fatalf("info %s %d %s", i.FMSPC, len(i.TCBLevels), i.IssueDate)
			}
			for n := 1; n < len(i.TCBLevels); n++ {
				if i.TCBLevels[n].TCBDate.After(i.TCBLevels[n-1].TCBDate) {
					t.Fatal("levels not sorted newest first")
				}
			}
			l, err := i.Match(c.cpusvn, c.pcesvn)
			if err != nil {
				t.Fatal(err)
			}
			if l.TCBStatus != c.status || len(l.AdvisoryIDs) != c.advisories {
				t.Fatalf("matched %s %v", l.TCBStatus, l.AdvisoryIDs)
			}
		})
	}
}

// TestWhitespace: unlike upstream's byte slicing, formatting around the
// tcbInfo value does not change what is signed.
func TestWhitespace(t *testing.T) {
	body := i5(t)
	a, err := Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	spaced := bytes.Replace(body, []byte(`{"tcbInfo":`), []byte("{\n  \"tcbInfo\" : "), 1)
	b, err := Parse(spaced)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) || a.Signature != b.Signature {
		t.Fatal("whitespace changed the signed bytes")
	}
}

func level(date string, status string, pcesvn uint16, svns ...uint8) string {
	comps := make([]string, Components)
	for i := range comps {
		var v uint8
		if i < len(svns) {
			v = svns[i]
		}
		comps[i] = fmt.Sprintf(`{"svn":%d}`, v)
	}
	return fmt.Sprintf(`{"tcb":{"sgxtcbcomponents":[%s],"pcesvn":%d},"tcbDate":"%s","tcbStatus":"%s"}`,
		strings.Join(comps, ","), pcesvn, date, status)
}

func doc(levels ...string) []byte {
	return []byte(`{"tcbInfo":{"id":"SGX","version":3,"issueDate":"2023-01-01T00:00:00Z","nextUpdate":"2023-02-01T00:00:00Z","fmspc":"00906ED50000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":14,"tcbLevels":[` +
		strings.Join(levels, ",") + `]},"signature":"` + strings.Repeat("ab", 64) + `"}`)
}

func TestMatch(t *testing.T) {
	// Out of order on purpose: Parse sorts newest first.
	s, err := Parse(doc(
		level("2019-01-01T00:00:00Z", StatusOutOfDate, 5, 1, 1),
		level("2022-01-01T00:00:00Z", StatusUpToDate, 13, 5, 5, 5),
		level("2020-01-01T00:00:00Z", StatusSWHardeningNeeded, 10, 3, 3),
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cpusvn [16]byte
		pcesvn uint16
		want   string
	}{
		{[16]byte{9, 9, 9}, 20, StatusUpToDate},
		{[16]byte{5, 5, 5}, 13, StatusUpToDate},
		{[16]byte{5, 5, 4}, 13, StatusSWHardeningNeeded}, // one component short
		{[16]byte{5, 5, 5}, 12, StatusSWHardeningNeeded}, // PCESVN short
		{[16]byte{3, 3}, 10, StatusSWHardeningNeeded},
		{[16]byte{1, 1}, 5, StatusOutOfDate},
		{[16]byte{0, 1}, 5, ""},
		{[16]byte{1, 1}, 4, ""},
	} {
		l, err := s.Info.Match(c.cpusvn, c.pcesvn)
		if c.want == "" {
			if !errors.Is(err, ErrNoLevel) {
				t.Errorf("%v/%d: got %v, want no level", c.cpusvn, c.pcesvn, l)
			}
			continue
		}
		if err != nil || l.TCBStatus != c.want {
			t.Errorf("%v/%d: got %v %v, want %s", c.cpusvn, c.pcesvn, l, err, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	ok := level("2022-01-01T00:00:00Z", StatusUpToDate, 1)
	for name, body := range map[string][]byte{
		"not json":       []byte("{"),
		"empty":          []byte("{}"),
		"null info":      []byte(`{"tcbInfo":null,"signature":"` + strings.Repeat("ab", 64) + `"}`),
		"no signature":   bytes.Replace(doc(ok), []byte(`,"signature"`), []byte(`,"sig"`), 1),
		"short sig":      bytes.Replace(doc(ok), []byte(strings.Repeat("ab", 64)), []byte(strings.Repeat("ab", 63)), 1),
		"non-hex sig":    bytes.Replace(doc(ok), []byte(strings.Repeat("ab", 64)), []byte(strings.Repeat("zz", 64)), 1),
		"15 components":  doc(strings.Replace(ok, `{"svn":0},`, "", 1)),
		"no levels":      doc(),
		"version 2":      bytes.Replace(doc(ok), []byte(`"version":3`), []byte(`"version":2`), 1),
		"tdx":            bytes.Replace(doc(ok), []byte(`"id":"SGX"`), []byte(`"id":"TDX"`), 1),
		"bad fmspc":      bytes.Replace(doc(ok), []byte(`"00906ED50000"`), []byte(`"00906ED5"`), 1),
		"bad date":       bytes.Replace(doc(ok), []byte(`2022-01-01T00:00:00Z`), []byte(`yesterday`), 1),
		"svn 256":        doc(strings.Replace(ok, `{"svn":0}`, `{"svn":256}`, 1)),
		"no status":      doc(strings.Replace(ok, `"tcbStatus":"UpToDate"`, `"tcbStatus":""`, 1)),
		"trailing":       append(doc(ok), '}'),
		"too large":      append(doc(ok), bytes.Repeat([]byte(" "), MaxSize)...),
		"no next update": bytes.Replace(doc(ok), []byte(`"nextUpdate":"2023-02-01T00:00:00Z",`), nil, 1),
	} {
		if _, err := Parse(body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse(doc(ok)); err != nil {
		t.Fatalf("control document rejected: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(doc(level("2022-01-01T00:00:00Z", StatusUpToDate, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		for _, l := range s.Info.TCBLevels {
			if len(l.TCB.SGXComponents) != Components {
				t.Fatal("level with wrong component count accepted")
			}
		}
		var svn [Components]byte
		for i := range svn {
			svn[i] = 0xff
		}
		if _, err := s.Info.Match(svn, 0xffff); err != nil {
			t.Fatal("maximal platform matches no level")
		}
	})
}
