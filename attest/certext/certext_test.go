package certext

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/attest"
)

func TestWorkloadRoundTrip(t *testing.T) {
	h := sha256.Sum256([]byte("wasm"))
	c := sha256.Sum256([]byte("toml"))
	for _, w := range []Workload{
		{WasmSHA256: h[:]},
		{WasmSHA256: h[:], ConfigSHA256: c[:], Package: "sha-256=:abc=:"},
	} {
		der, err := w.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseWorkload(der)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.WasmSHA256, w.WasmSHA256) || !bytes.Equal(got.ConfigSHA256, w.ConfigSHA256) || got.Package != w.Package {
			t.Fatalf("round trip: got %+v want %+v", got, w)
		}
	}
}

func TestWorkloadRejectsBadLengths(t *testing.T) {
	if _, err := (&Workload{WasmSHA256: []byte{1}}).Marshal(); err == nil {
		t.Fatal("short wasm digest accepted")
	}
	h := sha256.Sum256(nil)
	if _, err := (&Workload{WasmSHA256: h[:], ConfigSHA256: []byte{1, 2}}).Marshal(); err == nil {
		t.Fatal("short config digest accepted")
	}
}

func TestAttestedAsRoundTrip(t *testing.T) {
	a := AttestedAs{Claims: attest.Claims{Kind: attest.KindSNP, HardwareBacked: true, Measurement: []byte{1, 2, 3},
		TCBStatus: "UpToDate", Advisories: []string{"INTEL-SA-00289"}}, StewardDebug: true}
	der, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAttestedAs(der)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claims.Kind != attest.KindSNP || !got.Claims.HardwareBacked || !got.StewardDebug ||
		!bytes.Equal(got.Claims.Measurement, []byte{1, 2, 3}) || got.Claims.Advisories[0] != "INTEL-SA-00289" {
		t.Fatalf("round trip: %+v", got)
	}
}

func FuzzParse(f *testing.F) {
	h := sha256.Sum256(nil)
	w, _ := (&Workload{WasmSHA256: h[:]}).Marshal()
	a, _ := (&AttestedAs{Claims: attest.Claims{Kind: attest.KindNone}}).Marshal()
	f.Add(w)
	f.Add(a)
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, err := ParseWorkload(b); err == nil {
			m, err := w.Marshal()
			if err != nil {
				t.Fatalf("parsed workload does not re-marshal: %v", err)
			}
			if !bytes.Equal(m, b) {
				t.Fatalf("workload %x re-marshals as %x: two encodings of one identity", b, m)
			}
		}
		if a, err := ParseAttestedAs(b); err == nil {
			m, err := a.Marshal()
			if err != nil {
				t.Fatalf("parsed attested-as does not re-marshal: %v", err)
			}
			if !bytes.Equal(m, b) {
				t.Fatalf("attested-as %x re-marshals as %x: two encodings of one record", b, m)
			}
		}
	})
}

// One workload identity, one encoding: encoding/asn1 would also read the
// package from a BMPString (or PrintableString…), which other parsers
// decode differently.
func TestParseWorkloadRejectsOtherStringTypes(t *testing.T) {
	h := sha256.Sum256(nil)
	good, err := (&Workload{WasmSHA256: h[:], Package: "ab"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseWorkload(good); err != nil {
		t.Fatal(err)
	}
	// Same length, UTF8String (0x0c) → PrintableString (0x13).
	i := bytes.Index(good, []byte{0x0c, 0x02, 'a', 'b'})
	if i < 0 {
		t.Fatalf("no UTF8String package in %x", good)
	}
	other := bytes.Clone(good)
	other[i] = 0x13
	if _, err := ParseWorkload(other); err == nil || !strings.Contains(err.Error(), "canonical") {
		t.Fatalf("PrintableString package: got %v", err)
	}
}
