package identity

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseChain feeds arbitrary bytes to the parser of the Steward's reply.
// It must never panic, and whatever it accepts must re-encode to the input
// (each certificate is kept with its exact bytes, nothing is skipped).
func FuzzParseChain(f *testing.F) {
	ca := newTestCA(f, "Fuzz CA")
	s, err := newKeySigner("none")
	if err != nil {
		f.Fatal(err)
	}
	leaf := ca.issue(f, s.Public(), []string{"foo.bar.hub.profian.com"}, nil)
	good := pkiPath(f, ca.cert, leaf)
	f.Add(good)
	f.Add(pkiPath(f, ca.cert))
	f.Add(good[:len(good)-1])
	f.Add(append(append([]byte{}, good...), 0))
	if amd, err := os.ReadFile("testdata/upstream/milan.pkipath"); err == nil {
		f.Add(amd)
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseChain(b)
		if err != nil {
			return
		}
		if len(certs) == 0 || len(certs) > maxChainCerts {
			t.Fatalf("accepted %d certificates", len(certs))
		}
		var inner []byte
		for _, c := range certs {
			inner = append(inner, c.Raw...)
		}
		// The accepted input is exactly SEQUENCE { the certificates }.
		if !bytes.HasSuffix(b, inner) || len(b)-len(inner) > 6 || b[0] != 0x30 {
			t.Fatalf("parsed certificates do not cover the input")
		}
	})
}
