package snp

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"

	"github.com/google/go-sev-guest/abi"
	sevtestdata "github.com/google/go-sev-guest/verify/testdata"

	"github.com/enarx-go/enarx/internal/testutil"
)

// identifyReportSeeds are FuzzIdentifyReport's seeds, built on
// go-sev-guest's sample report (a real version-2 one): a report of the
// emulated root would differ every run (its report ID, chip ID and
// signature are random), and the committed corpus must be these bytes.
func identifyReportSeeds() [][]byte {
	raw := sevtestdata.AttestationBytes
	v2 := bytes.Clone(raw)
	v2[0] = 2
	return [][]byte{raw, raw[:abi.ReportSize-1], v2, {}}
}

// FuzzIdentifyReport feeds arbitrary bytes, as a broken or hostile report
// provider could return them, to the parser that picks the VCEK to use.
// It must return an error, never panic.
func FuzzIdentifyReport(f *testing.F) {
	seeds := identifyReportSeeds()
	testutil.CheckSeedCorpus(f, "FuzzIdentifyReport", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := IdentifyReport(b)
		if err == nil && id.ProductLine == "" {
			t.Fatal("accepted a report without naming its product line")
		}
	})
}

// certTableSeeds are FuzzCertTable's seeds, built on go-sev-guest's sample
// VCEK (a real one; the emulated root's differs every run).
func certTableSeeds(t testing.TB) [][]byte {
	good := certTable(t, sevtestdata.VcekBytes)
	wrap := make([]byte, 2*abi.CertTableEntrySize) // offset+length wraps in 32 bits
	copy(wrap, good[:16])
	binary.LittleEndian.PutUint32(wrap[16:], 0xffff_fff0)
	binary.LittleEndian.PutUint32(wrap[20:], 0x20)
	return [][]byte{good, good[:len(good)/2], make([]byte, 24), {}, wrap}
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
	seeds := certTableSeeds(f)
	testutil.CheckSeedCorpus(f, "FuzzCertTable", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	p := &Provider{Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, table []byte) {
		v, err := p.vcek(&Report{Raw: raw, CertTable: table, Source: "fuzz"})
		if err == nil && len(v) == 0 {
			t.Fatal("empty VCEK without an error")
		}
	})
}
