package qeidentity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// sample follows Intel PCS v4's /sgx/certification/v4/qe/identity layout.
const sample = `{"enclaveIdentity":{"id":"QE","version":2,"issueDate":"2023-01-26T11:00:00Z","nextUpdate":"2023-02-25T11:00:00Z","tcbEvaluationDataNumber":14,` +
	`"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000",` +
	`"mrsigner":"8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF","isvprodid":1,"tcbLevels":[` +
	`{"tcb":{"isvsvn":2},"tcbDate":"2019-05-15T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-00219"]},` +
	`{"tcb":{"isvsvn":8},"tcbDate":"2022-08-10T00:00:00Z","tcbStatus":"UpToDate"},` +
	`{"tcb":{"isvsvn":6},"tcbDate":"2021-11-10T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-00615"]}]},` +
	`"signature":"` + "0102030405060708091011121314151617181920212223242526272829303132" + "0102030405060708091011121314151617181920212223242526272829303132" + `"}`

func TestParse(t *testing.T) {
	s, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(s.Raw, []byte(`{"id":"QE"`)) || !bytes.HasSuffix(s.Raw, []byte(`]}`)) || s.Signature[0] != 1 {
		t.Fatal("signed bytes or signature wrong")
	}
	i := s.Identity
	for svn, want := range map[uint16]string{9: "UpToDate", 8: "UpToDate", 7: "OutOfDate", 6: "OutOfDate", 2: "OutOfDate"} {
		l, err := i.Match(svn)
		if err != nil || l.TCBStatus != want {
			t.Errorf("isvsvn %d: %v %v, want %s", svn, l, err, want)
		}
	}
	if _, err := i.Match(1); !errors.Is(err, ErrNoLevel) {
		t.Error("isvsvn 1 matched")
	}
	attrs := []byte{0x11, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0} // XFRM is masked out
	if !i.MatchesAttributes(attrs) || !i.MatchesMiscSelect([]byte{0, 0, 0, 0}) {
		t.Error("matching report rejected")
	}
	attrs[0] |= 0x02 // DEBUG
	if i.MatchesAttributes(attrs) || i.MatchesMiscSelect([]byte{1, 0, 0, 0}) || i.MatchesAttributes(attrs[:8]) {
		t.Error("mismatching report accepted")
	}
}

func TestParseRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      "{",
		"no identity":   `{"signature":"00"}`,
		"td qe":         strings.Replace(sample, `"id":"QE"`, `"id":"TD_QE"`, 1),
		"version 1":     strings.Replace(sample, `"version":2`, `"version":1`, 1),
		"short mrsign":  strings.Replace(sample, `"mrsigner":"8C4F`, `"mrsigner":"`, 1),
		"short mask":    strings.Replace(sample, `"attributesMask":"FB`, `"attributesMask":"`, 1),
		"no levels":     sample[:strings.Index(sample, `"tcbLevels"`)] + `"tcbLevels":[]},"signature":"` + strings.Repeat("00", 64) + `"}`,
		"short sig":     strings.Replace(sample, "0102030405060708091011121314151617181920212223242526272829303132\"", "\"", 1),
		"empty status":  strings.Replace(sample, `"tcbStatus":"UpToDate"`, `"tcbStatus":""`, 1),
		"no nextUpdate": strings.Replace(sample, `"nextUpdate":"2023-02-25T11:00:00Z",`, "", 1),
	} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func parseSeeds() [][]byte { return [][]byte{[]byte(sample)} }

func FuzzParse(f *testing.F) {
	seeds := parseSeeds()
	testutil.CheckSeedCorpus(f, "FuzzParse", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := s.Identity.Match(0xffff); err != nil {
			t.Fatal("maximal ISVSVN matches no level")
		}
		s.Identity.MatchesAttributes(make([]byte, 16))
		s.Identity.MatchesMiscSelect(make([]byte, 4))
	})
}
