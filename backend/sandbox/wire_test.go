package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestWireRefusesTrailingData: a message header, and the volume-key
// message, is one JSON value and nothing after it but white space. The
// host reads the result header from a Keep it does not trust, and the Keep
// the launch header and volume keys from a host it does not trust:
// encoding/json's Decoder.More reports no more input before a '}' or ']',
// so a check with it alone let those two through after the value.
func TestWireRefusesTrailingData(t *testing.T) {
	msg := func(h string) []byte {
		b := []byte(resultMagic + "\x00\x00\x00\x00" + h)
		binary.BigEndian.PutUint32(b[4:8], uint32(len(h)))
		return b
	}
	var ok result
	if err := readHeader(bytes.NewReader(msg(`{"exit_code":3} `)), resultMagic, &ok); err != nil || ok.ExitCode != 3 {
		t.Fatalf("a well-formed result header: %+v, %v", ok, err)
	}
	for _, trail := range []string{"}", "]", " }", "{}", "x", "}}"} {
		var r result
		if err := readHeader(bytes.NewReader(msg(`{"exit_code":3}`+trail)), resultMagic, &r); err == nil {
			t.Errorf("result header with %q after it accepted: %+v", trail, r)
		}
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, volumeKeySize))
	keys := fmt.Sprintf(`{"file:/k":%q}`, key)
	if got, err := decodeVolumeKeys([]byte(keys + "\n")); err != nil || len(got) != 1 {
		t.Fatalf("well-formed volume keys: %v, %v", got, err)
	}
	for _, trail := range []string{"}", "]", "\t]", "{}"} {
		if _, err := decodeVolumeKeys([]byte(keys + trail)); err == nil {
			t.Errorf("volume keys with %q after them accepted", trail)
		}
	}
}
