package channel

import (
	"errors"
	"testing"
)

// TestDecodeRejectsTrailingData: a message is one JSON object and nothing
// after it but white space. encoding/json's Decoder.More reports no more
// input before a closing '}' or ']', so those must be caught too.
func TestDecodeRejectsTrailingData(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"role":"file"}`, true},
		{"{\"role\":\"file\"} \n\t", true},
		{`{"role":"file"}}`, false},
		{`{"role":"file"}]`, false},
		{`{"role":"file"}]]]}`, false},
		{`{"role":"file"} }`, false},
		{`{"role":"file"}{}`, false},
		{`{"role":"file"}x`, false},
		{`{"role":"file"}0`, false},
		{`{"role":"file","evil":1}`, false},
		{`{"role":`, false},
	} {
		var o Open
		err := Decode([]byte(tc.in), &o)
		if tc.ok && err != nil {
			t.Errorf("%q: %v", tc.in, err)
		}
		if !tc.ok && !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: decoded with error %v; want a protocol violation", tc.in, err)
		}
	}
}
