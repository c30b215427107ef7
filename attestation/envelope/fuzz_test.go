package envelope

import (
	"bytes"
	"strconv"
	"testing"
)

func quote(b []byte) string { return strconv.Quote(string(b)) }

// fuzzRoundTrip checks that whatever decodes re-encodes to the same bytes
// (DER is canonical, and the decoders accept nothing else).
func fuzzRoundTrip(t *testing.T, in []byte, marshal func() ([]byte, error)) {
	out, err := marshal()
	if err != nil {
		t.Fatalf("decoded value does not re-encode: %v", err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
	}
}

func FuzzDecodeSnpEvidence(f *testing.F) {
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeSnpEvidence(b)
		if err == nil {
			fuzzRoundTrip(t, b, e.Marshal)
		}
	})
}

func FuzzDecodeSgxEvidence(f *testing.F) {
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeSgxEvidence(b)
		if err == nil {
			fuzzRoundTrip(t, b, e.Marshal)
		}
	})
}

func FuzzDecodeTdxEvidence(f *testing.F) {
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeTdxEvidence(b)
		if err == nil {
			fuzzRoundTrip(t, b, e.Marshal)
		}
	})
}

func FuzzDecodeCrlList(f *testing.F) {
	f.Add([]byte{0x30, 0x02, 0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeCrlList(b)
		if err == nil {
			fuzzRoundTrip(t, b, l.Marshal)
		}
	})
}

func FuzzDecodeTcbPackage(f *testing.F) {
	f.Add([]byte{0x30, 0x04, 0x30, 0x00, 0x04, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeTcbPackage(b)
		if err == nil {
			fuzzRoundTrip(t, b, p.Marshal)
		}
	})
}
