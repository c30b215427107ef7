package snp

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// TestMilanLaunchTCB: the real Milan report's LAUNCH_TCB (BL 2, TEE 0, SNP
// 6, µcode 93, like its REPORTED_TCB) meets a minimum launch TCB of exactly
// those values, and a minimum raised by one in any component is rejected
// with snp.tcb.launch-minimum naming that component. MinimumTCB stays zero,
// so only the LAUNCH_TCB check can fail.
func TestMilanLaunchTCB(t *testing.T) {
	e, err := envelope.DecodeSnpEvidence(milanRequest(t).Extension.Value)
	if err != nil {
		t.Fatal(err)
	}
	r, err := abi.ReportToProto(e.Report)
	if err != nil {
		t.Fatal(err)
	}
	launch := kds.DecomposeTCBVersion(kds.TCBVersion(r.GetLaunchTcb()))
	if want := (kds.TCBParts{BlSpl: 2, TeeSpl: 0, SnpSpl: 6, UcodeSpl: 93}); launch != want {
		t.Fatalf("recorded LAUNCH_TCB %+v, want %+v", launch, want)
	}
	verify := func(want kds.TCBParts) error {
		p := stewardPolicy(t)
		p.MinimumLaunchTCB = want
		_, err := newVerifier(t, p).Verify(context.Background(), milanRequest(t))
		return err
	}
	if err := verify(launch); err != nil {
		t.Fatalf("minimum launch TCB equal to LAUNCH_TCB: %v", err)
	}
	for _, c := range []struct {
		name  string
		raise func(p *kds.TCBParts)
	}{
		{"bootloader", func(p *kds.TCBParts) { p.BlSpl++ }},
		{"tee", func(p *kds.TCBParts) { p.TeeSpl++ }},
		{"snp", func(p *kds.TCBParts) { p.SnpSpl++ }},
		{"microcode", func(p *kds.TCBParts) { p.UcodeSpl++ }},
	} {
		t.Run(c.name, func(t *testing.T) {
			raised := launch
			c.raise(&raised)
			err := verify(raised)
			r, ok := attest.AsRejection(err)
			if !ok || r.Code != CodeTCBLaunchMinimum {
				t.Fatalf("got %v, want %s", err, CodeTCBLaunchMinimum)
			}
			if !strings.Contains(err.Error(), "LAUNCH_TCB") || !strings.Contains(err.Error(), c.name+" SPL") {
				t.Fatalf("error %q does not name LAUNCH_TCB and the %s component", err, c.name)
			}
		})
	}
}

// TestTCBShortfallNamesComponent: the REPORTED_TCB minimum names the low
// component too, and the reserved SPL bytes (Go API only) are still
// compared.
func TestTCBShortfallNamesComponent(t *testing.T) {
	tcb, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, SnpSpl: 6, UcodeSpl: 93})
	if err != nil {
		t.Fatal(err)
	}
	if c, low := tcbShortfall(kds.TCBParts{BlSpl: 2, SnpSpl: 6, UcodeSpl: 93}, uint64(tcb)); low {
		t.Fatalf("equal TCB is low: %s", c)
	}
	if c, low := tcbShortfall(kds.TCBParts{UcodeSpl: 94}, uint64(tcb)); !low || c != "microcode SPL 93 is below 94" {
		t.Fatalf("got %q %v", c, low)
	}
	if _, low := tcbShortfall(kds.TCBParts{Spl5: 1}, uint64(tcb)); !low {
		t.Fatal("reserved SPL byte not compared")
	}
	p := stewardPolicy(t)
	p.MinimumTCB = kds.TCBParts{BlSpl: 2, TeeSpl: 1, SnpSpl: 6, UcodeSpl: 93}
	_, err = newVerifier(t, p).Verify(context.Background(), milanRequest(t))
	if r, ok := attest.AsRejection(err); !ok || r.Code != CodeTCBMinimum || !strings.Contains(err.Error(), "tee SPL 0 is below 1") {
		t.Fatalf("got %v", err)
	}
}
