package signedjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

var sig128 = strings.Repeat("ab", 64)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name, body, want, err string
	}{
		{"ok", `{"tcbInfo": {"a": 1 },"signature":"` + sig128 + `"}`, `{"a": 1 }`, ""},
		{"too large", `{"tcbInfo":{},"signature":"` + sig128 + `"}` + strings.Repeat(" ", 400), "", "exceeds the 400-byte limit"},
		{"not json", `{`, "", "unexpected EOF"},
		{"missing body", `{"signature":"` + sig128 + `"}`, "", `no "tcbInfo" object`},
		{"null body", `{"tcbInfo":null,"signature":"` + sig128 + `"}`, "", `no "tcbInfo" object`},
		// encoding/json matches struct fields case-insensitively; the
		// signed body must be under its exact name.
		{"other case", `{"TCBINFO":{},"signature":"` + sig128 + `"}`, "", `unexpected member "TCBINFO"`},
		// A second body under a name a struct decode would take for the
		// first, or the same name twice: refused, whichever comes first.
		{"other case beside", `{"tcbInfo":{},"TCBINFO":{"a":1},"signature":"` + sig128 + `"}`, "", `unexpected member "TCBINFO"`},
		{"other case before", `{"TcbInfo":{"a":1},"tcbInfo":{},"signature":"` + sig128 + `"}`, "", `unexpected member "TcbInfo"`},
		{"twice", `{"tcbInfo":{},"tcbInfo":{"a":1},"signature":"` + sig128 + `"}`, "", `member "tcbInfo" occurs twice`},
		{"signature twice", `{"tcbInfo":{},"signature":"` + sig128 + `","signature":"` + sig128 + `"}`, "", `member "signature" occurs twice`},
		{"extra member", `{"tcbInfo":{},"signature":"` + sig128 + `","x":1}`, "", `unexpected member "x"`},
		{"trailing data", `{"tcbInfo":{},"signature":"` + sig128 + `"}x`, "", "data after the JSON object"},
		{"trailing object", `{"tcbInfo":{},"signature":"` + sig128 + `"}{}`, "", "data after the JSON object"},
		{"array", `[]`, "", "not a JSON object"},
		{"missing signature", `{"tcbInfo":{}}`, "", `no "signature"`},
		{"null signature", `{"tcbInfo":{},"signature":null}`, "", "not 128 hex digits"},
		{"numeric signature", `{"tcbInfo":{},"signature":1}`, "", "signature is not a string"},
		{"short signature", `{"tcbInfo":{},"signature":"abcd"}`, "", "not 128 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, sig, err := Split([]byte(tc.body), "tcbInfo", 400, "tcb info")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "tcb info: ") {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || string(raw) != tc.want || sig[0] != 0xab || sig[63] != 0xab {
				t.Fatalf("got %q %x %v", raw, sig, err)
			}
		})
	}
}

func splitSeeds() [][]byte {
	return [][]byte{
		[]byte(`{"tcbInfo":{"id":"SGX"},"signature":"` + sig128 + `"}`),
		[]byte(`{"tcbInfo":{},"tcbInfo":[],"signature":"` + sig128 + `"}`),
		[]byte(`{"tcbInfo":"\u0000","signature":""}`),
		[]byte(`{"tcbInfo":{},"TCBINFO":{"a":1},"signature":"` + sig128 + `"}`),
	}
}

// FuzzSplit: hostile collateral gives an error, never a panic; an accepted
// body is valid JSON that appears verbatim in the input, and what any
// decoder of the whole document reads as the body (encoding/json matches
// member names case-insensitively, the last one winning) is that body.
func FuzzSplit(f *testing.F) {
	seeds := splitSeeds()
	testutil.CheckSeedCorpus(f, "FuzzSplit", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, _, err := Split(b, "tcbInfo", 4096, "tcb info")
		if err != nil {
			return
		}
		if !json.Valid(raw) || !bytes.Contains(b, raw) {
			t.Fatalf("body %q is not valid JSON taken from the input", raw)
		}
		var whole struct {
			TcbInfo json.RawMessage
		}
		if err := json.Unmarshal(b, &whole); err != nil || !bytes.Equal(whole.TcbInfo, raw) {
			t.Fatalf("a decode of the whole document reads the body %q (%v), Split %q", whole.TcbInfo, err, raw)
		}
	})
}
