package snp

import (
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/google/go-sev-guest/abi"
)

// FuzzIdentifyReport feeds arbitrary bytes, as a broken or hostile report
// provider could return them, to the parser that picks the VCEK to use.
// It must return an error, never panic.
func FuzzIdentifyReport(f *testing.F) {
	raw, err := signer(f).SignReport(rdata(), emulatedOpts())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:abi.ReportSize-1])
	v2 := append([]byte{}, raw...)
	v2[0] = 2
	f.Add(v2)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := IdentifyReport(b)
		if err == nil && id.ProductLine == "" {
			t.Fatal("accepted a report without naming its product line")
		}
	})
}

// FuzzCertTable feeds arbitrary bytes as the host-provided certificate
// table (configfs-tsm auxblob or the extended report's certificates): the
// Keep must take a VCEK from it or fall back, never panic.
func FuzzCertTable(f *testing.F) {
	r := signer(f)
	raw, err := r.SignReport(rdata(), emulatedOpts())
	if err != nil {
		f.Fatal(err)
	}
	good := certTable(f, r.VCEK.Raw)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(make([]byte, 24))
	f.Add([]byte{})
	wrap := make([]byte, 2*abi.CertTableEntrySize) // offset+length wraps in 32 bits
	copy(wrap, good[:16])
	binary.LittleEndian.PutUint32(wrap[16:], 0xffff_fff0)
	binary.LittleEndian.PutUint32(wrap[20:], 0x20)
	f.Add(wrap)
	p := &Provider{Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, table []byte) {
		v, err := p.vcek(&Report{Raw: raw, CertTable: table, Source: "fuzz"})
		if err == nil && len(v) == 0 {
			t.Fatal("empty VCEK without an error")
		}
	})
}
