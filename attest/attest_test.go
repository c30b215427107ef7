package attest

import (
	"bytes"
	"errors"
	"testing"
)

func TestWorkloadBinding(t *testing.T) {
	spki, wl, other := []byte("spki"), []byte("workload DER"), []byte("another workload")
	for _, k := range []Kind{KindSNP, KindTDX, KindSGX, KindNone} {
		rd := ReportDataWithWorkload(k, spki, wl)
		key := ReportData(k, spki)
		n := ReportDataLen(k)
		if !bytes.Equal(rd[:n], key[:n]) {
			t.Fatalf("%s: the workload changed the key binding", k)
		}
		if bound, err := CheckWorkloadBinding(k, rd[:], wl); !bound || err != nil {
			t.Errorf("%s: own binding: %v %v", k, bound, err)
		}
		if bound, err := CheckWorkloadBinding(k, key[:], wl); bound || err != nil {
			t.Errorf("%s: a zero tail must bind nothing and be accepted: %v %v", k, bound, err)
		}
		if _, err := CheckWorkloadBinding(k, rd[:], other); !errors.Is(err, ErrWorkloadBinding) {
			t.Errorf("%s: another workload accepted: %v", k, err)
		}
		if _, err := CheckWorkloadBinding(k, rd[:], nil); !errors.Is(err, ErrWorkloadBinding) {
			t.Errorf("%s: a binding without a workload extension accepted: %v", k, err)
		}
		if _, err := CheckWorkloadBinding(k, rd[:n-1], wl); err == nil {
			t.Errorf("%s: short report data accepted", k)
		}
	}
}

// FuzzCheckWorkloadBinding: the check accepts a report data tail only when
// it is all zeros (bound = false) or exactly the workload's binding (bound =
// true).
func FuzzCheckWorkloadBinding(f *testing.F) {
	rd := ReportDataWithWorkload(KindSNP, []byte("k"), []byte("w"))
	f.Add(rd[:], []byte("w"), uint8(0))
	f.Add(make([]byte, 64), []byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, data, wl []byte, kind uint8) {
		k := []Kind{KindSNP, KindTDX, KindSGX, KindNone}[kind%4]
		bound, err := CheckWorkloadBinding(k, data, wl)
		if err != nil {
			return
		}
		tail := data[ReportDataLen(k):]
		if !bound {
			if !bytes.Equal(tail, make([]byte, len(tail))) {
				t.Fatalf("unbound but the tail is %x", tail)
			}
			return
		}
		want := WorkloadBinding(wl)
		if len(tail) > 32 || !bytes.Equal(tail, want[:len(tail)]) {
			t.Fatalf("bound to %x, which is not the workload's %x", tail, want)
		}
	})
}
