package certext

import (
	"bytes"
	"crypto/sha256"
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
			if _, err := w.Marshal(); err != nil {
				t.Fatalf("parsed workload does not re-marshal: %v", err)
			}
		}
		if a, err := ParseAttestedAs(b); err == nil {
			if _, err := a.Marshal(); err != nil {
				t.Fatalf("parsed attested-as does not re-marshal: %v", err)
			}
		}
	})
}
