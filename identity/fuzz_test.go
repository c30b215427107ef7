package identity

import (
	"bytes"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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

// FuzzSanitizeReason feeds arbitrary error bodies, as a hostile Steward (or
// whatever answers at its URL) could send them, to the function that quotes
// them in the Keep's error message: the result must be one line of valid,
// printable UTF-8 of bounded length.
func FuzzSanitizeReason(f *testing.F) {
	f.Add([]byte("unsupported evidence"))
	f.Add([]byte("line one\nline two\r\n\x1b[31mred\x1b[0m"))
	f.Add([]byte("\xff\xfe invalid \xc3"))
	f.Add(bytes.Repeat([]byte("é"), maxReasonSize))
	f.Add([]byte("\u202eevil\u2066"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := sanitizeReason(b)
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8: %q", s)
		}
		if len(s) > maxReasonSize+len("…") {
			t.Fatalf("%d bytes, more than %d", len(s), maxReasonSize+len("…"))
		}
		for _, r := range s {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %U in %q", r, s)
			}
		}
	})
}

// FuzzParsePEMPool feeds arbitrary text as the inline PEM trust anchors of
// Enarx.toml (ca, client_ca, steward_ca): only text made wholly of PEM
// CERTIFICATE blocks is accepted, and an error never echoes the text.
func FuzzParsePEMPool(f *testing.F) {
	ca := newTestCA(f, "Fuzz PEM CA")
	p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
	f.Add(p)
	f.Add(p + p)
	f.Add(p + "trailing")
	f.Add(p[:len(p)/2])
	f.Add("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		pool, err := parsePEMPool(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if pool == nil {
			t.Fatal("no pool and no error")
		}
		rest := []byte(s)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			t.Fatal("accepted text that is not PEM")
		}
	})
}
