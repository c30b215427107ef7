package sgx

import (
	"context"
	"crypto/x509/pkix"
	"strconv"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/sgx/quote"
	"github.com/enarx-go/enarx/attestation/sgx/tcbinfo"
)

func evalMin(p *Policy, n int64) *Policy {
	q := *p
	q.MinTCBEvaluationDataNumber = &n
	return &q
}

// TestMinTCBEvaluationDataNumberReal: both real Ice Lake vectors pass a
// minimum equal to their TCB Info's own tcbEvaluationDataNumber and fail
// with that number + 1, naming the collateral and both numbers. (They
// carry no QE Identity; see TestMinTCBEvaluationDataNumberQEIdentity.)
func TestMinTCBEvaluationDataNumberReal(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			signed, err := tcbinfo.Parse(evidence(t, name).TCB.Report)
			if err != nil {
				t.Fatal(err)
			}
			own := int64(signed.Info.TCBEvaluationDataNumber)
			if own == 0 {
				t.Fatal("recorded TCB Info has no tcbEvaluationDataNumber")
			}
			v, err := New(Options{Policy: evalMin(testPolicy(t), own)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), request(t, name)); err != nil {
				t.Fatalf("minimum %d (its own): %v", own, err)
			}
			v, err = New(Options{Policy: evalMin(testPolicy(t), own+1)})
			if err != nil {
				t.Fatal(err)
			}
			expectCode(t, v, request(t, name), "sgx.tcb.eval_data_number")
			_, err = v.Verify(context.Background(), request(t, name))
			for _, want := range []string{"TCB Info", "tcbEvaluationDataNumber " + strconv.FormatInt(own, 10), "min_tcb_evaluation_data_number " + strconv.FormatInt(own+1, 10)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestMinTCBEvaluationDataNumberQEIdentity: synthetic evidence whose TCB
// Info (number 14) and QE Identity (number qeNum) differ; the minimum is
// enforced on each, and the rejection says which collateral is too old.
func TestMinTCBEvaluationDataNumberQEIdentity(t *testing.T) {
	signer := strings.Repeat("53", 32) // "S"×32, the synthetic MRSIGNER
	base := &Policy{Signer: []string{signer}}
	for _, c := range []struct {
		name  string
		qeNum int
		min   int64
		code  string
		what  string
	}{
		{"both at the minimum", 14, 14, "", ""},
		{"newer QE Identity", 16, 14, "", ""},
		{"QE Identity too old", 13, 14, "sgx.qeid.eval_data_number", "QE Identity has tcbEvaluationDataNumber 13, below sgx.min_tcb_evaluation_data_number 14"},
		{"TCB Info too old", 16, 15, "sgx.tcb.eval_data_number", "TCB Info has tcbEvaluationDataNumber 14, below sgx.min_tcb_evaluation_data_number 15"},
		{"both too old: TCB Info is checked first", 16, 17, "sgx.tcb.eval_data_number", "TCB Info has tcbEvaluationDataNumber 14"},
		{"no minimum", 1, 0, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := defaultKnobs()
			p := newSynthPlatform(t, k)
			req := p.request(t, k)
			ev, err := envelope.DecodeSgxEvidence(req.Extension.Value)
			if err != nil {
				t.Fatal(err)
			}
			q, err := quote.Parse(ev.Quote)
			if err != nil {
				t.Fatal(err)
			}
			id := qeIdentityFor(q, func(m map[string]any) { m["tcbEvaluationDataNumber"] = c.qeNum })
			der, err := encodeEvidence(ev, p.pki.pkg(p.pki.sign(t, "enclaveIdentity", id)))
			if err != nil {
				t.Fatal(err)
			}
			req.Extension = pkix.Extension{Id: attest.OIDEvidenceSGX, Value: der}
			pol := base
			if c.min != 0 {
				pol = evalMin(base, c.min)
			}
			_, err = p.verifier(pol).Verify(context.Background(), req)
			if got := code(err); got != c.code {
				t.Fatalf("got %q (%v), want %q", got, err, c.code)
			}
			if err != nil && !strings.Contains(err.Error(), c.what) {
				t.Fatalf("error %q does not say %q", err, c.what)
			}
		})
	}
}

func TestMinTCBEvaluationDataNumberValidate(t *testing.T) {
	base := &Policy{Signer: []string{strings.Repeat("53", 32)}}
	for _, n := range []int64{-1, 1 << 32} {
		if err := evalMin(base, n).Validate(); err == nil || !strings.Contains(err.Error(), "sgx.min_tcb_evaluation_data_number") {
			t.Errorf("%d: %v", n, err)
		}
	}
	for _, n := range []int64{0, 1<<32 - 1} {
		if err := evalMin(base, n).Validate(); err != nil {
			t.Errorf("%d: %v", n, err)
		}
	}
}
