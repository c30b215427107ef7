// Package certext encodes and decodes this project's certificate extensions:
// the workload identity (what a Keep runs) and the attested-as claims (what
// the Steward verified). Relying parties use it to check a Keep certificate.
//
// Input to the Parse functions is untrusted; they return errors, never panic.
package certext

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/enarx-go/enarx/attest"
)

// Workload is the workload identity, OID attest.OIDWorkload:
//
//	WorkloadIdentity ::= SEQUENCE {
//	    wasm    OCTET STRING,  -- SHA-256 of the wasm module (32 bytes)
//	    config  OCTET STRING,  -- SHA-256 of the Enarx.toml bytes; empty if none
//	    package UTF8String     -- Drawbridge package (tag entry) digest, e.g.
//	                           -- "sha-256=:…:"; empty for local runs
//	}
type Workload struct {
	WasmSHA256   []byte
	ConfigSHA256 []byte
	Package      string
}

type workloadASN1 struct {
	Wasm    []byte
	Config  []byte
	Package string `asn1:"utf8"`
}

// Marshal returns the DER extension value.
func (w *Workload) Marshal() ([]byte, error) {
	if len(w.WasmSHA256) != 32 {
		return nil, fmt.Errorf("workload identity: wasm digest must be 32 bytes, got %d", len(w.WasmSHA256))
	}
	if n := len(w.ConfigSHA256); n != 0 && n != 32 {
		return nil, fmt.Errorf("workload identity: config digest must be empty or 32 bytes, got %d", n)
	}
	return asn1.Marshal(workloadASN1{Wasm: w.WasmSHA256, Config: w.ConfigSHA256, Package: w.Package})
}

// Extension returns the non-critical extension carrying w.
func (w *Workload) Extension() (pkix.Extension, error) {
	v, err := w.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: attest.OIDWorkload, Value: v}, nil
}

// ParseWorkload decodes a workload identity extension value.
func ParseWorkload(der []byte) (*Workload, error) {
	var a workloadASN1
	rest, err := asn1.Unmarshal(der, &a)
	if err != nil {
		return nil, fmt.Errorf("workload identity: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("workload identity: trailing data")
	}
	w := &Workload{WasmSHA256: a.Wasm, ConfigSHA256: a.Config, Package: a.Package}
	m, err := w.Marshal() // length checks
	if err != nil {
		return nil, err
	}
	// encoding/asn1 also accepts other string types (BMPString, …) for
	// package; one identity must have one encoding, or parsers disagree.
	if !bytes.Equal(m, der) {
		return nil, errors.New("workload identity: not in canonical DER (package must be a UTF8String)")
	}
	return w, nil
}

// AttestedAs is what the Steward verified, OID attest.OIDAttestedAs:
//
//	AttestedAs ::= SEQUENCE {
//	    tee            UTF8String,   -- "none" | "sgx" | "snp" | "tdx"
//	    hardware       BOOLEAN,      -- false: no hardware, or an emulated root
//	    debug          BOOLEAN,      -- TEE in debug mode (host can read it)
//	    measurement    OCTET STRING, -- SNP MEASUREMENT / SGX MRENCLAVE / TDX MRTD
//	    signer         OCTET STRING, -- SNP author/ID key digest / SGX MRSIGNER / TDX MRSIGNERSEAM
//	    tcbStatus      UTF8String,
//	    advisories     SEQUENCE OF UTF8String,
//	    stewardDebug   BOOLEAN,      -- the Steward itself ran in debug mode
//	    workloadBound  [0] EXPLICIT BOOLEAN OPTIONAL -- the hardware report data
//	                                  names the workload identity (present only when TRUE)
//	}
type AttestedAs struct {
	Claims       attest.Claims
	StewardDebug bool
}

type attestedASN1 struct {
	TEE           string `asn1:"utf8"`
	Hardware      bool
	Debug         bool
	Measurement   []byte
	Signer        []byte
	TCBStatus     string `asn1:"utf8"`
	Advisories    []asn1.RawValue
	StewardDebug  bool
	WorkloadBound bool `asn1:"optional,explicit,tag:0"`
}

// Marshal returns the DER extension value.
func (a *AttestedAs) Marshal() ([]byte, error) {
	c := a.Claims
	adv := make([]asn1.RawValue, 0, len(c.Advisories))
	for _, s := range c.Advisories {
		adv = append(adv, asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(s)})
	}
	return asn1.Marshal(attestedASN1{
		TEE: string(c.Kind), Hardware: c.HardwareBacked, Debug: c.Debug,
		Measurement: nonNil(c.Measurement), Signer: nonNil(c.Signer), TCBStatus: c.TCBStatus,
		Advisories: adv, StewardDebug: a.StewardDebug, WorkloadBound: c.WorkloadBound,
	})
}

// Extension returns the non-critical extension carrying a.
func (a *AttestedAs) Extension() (pkix.Extension, error) {
	v, err := a.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: attest.OIDAttestedAs, Value: v}, nil
}

// ParseAttestedAs decodes an attested-as extension value.
func ParseAttestedAs(der []byte) (*AttestedAs, error) {
	var a attestedASN1
	rest, err := asn1.Unmarshal(der, &a)
	if err != nil {
		return nil, fmt.Errorf("attested-as: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("attested-as: trailing data")
	}
	switch k := attest.Kind(a.TEE); k {
	case attest.KindNone, attest.KindSGX, attest.KindSNP, attest.KindTDX:
	default:
		return nil, fmt.Errorf("attested-as: unknown TEE %q", a.TEE)
	}
	var adv []string
	for _, v := range a.Advisories {
		if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagUTF8String || v.IsCompound {
			return nil, errors.New("attested-as: advisory is not a UTF8String")
		}
		if !utf8.Valid(v.Bytes) {
			return nil, errors.New("attested-as: advisory is not valid UTF-8")
		}
		adv = append(adv, string(v.Bytes))
	}
	out := &AttestedAs{
		Claims: attest.Claims{
			Kind: attest.Kind(a.TEE), HardwareBacked: a.Hardware, Debug: a.Debug,
			Measurement: a.Measurement, Signer: a.Signer, TCBStatus: a.TCBStatus, Advisories: adv,
			WorkloadBound: a.WorkloadBound,
		},
		StewardDebug: a.StewardDebug,
	}
	// As for the workload identity: only the Steward's own encoding.
	if m, err := out.Marshal(); err != nil || !bytes.Equal(m, der) {
		return nil, errors.New("attested-as: not in canonical DER")
	}
	return out, nil
}

// FromCertificate returns the workload identity and attested-as claims found
// in cert; either may be nil when the extension is absent. A present but
// malformed extension is an error.
func FromCertificate(cert *x509.Certificate) (*Workload, *AttestedAs, error) {
	var w *Workload
	var a *AttestedAs
	for _, e := range cert.Extensions {
		var err error
		switch {
		case e.Id.Equal(attest.OIDWorkload):
			w, err = ParseWorkload(e.Value)
		case e.Id.Equal(attest.OIDAttestedAs):
			a, err = ParseAttestedAs(e.Value)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return w, a, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
