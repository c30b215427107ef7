package sgx

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/attestation/sgx/quote"
)

func qeMin(p *Policy, n int) *Policy {
	q := *p
	q.MinQESVN = &n
	return &q
}

// TestMinQESVN: sgx.min_qe_svn refuses real evidence whose Quoting Enclave
// (its PCK-signed report's ISVSVN) is older, although the evidence carries
// no QE Identity, which would rate the QE and which the sender may leave
// out: without the key such a QE passed from the built-in MinQESVN on,
// whatever the policy. A minimum below the built-in one changes nothing.
func TestMinQESVN(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			q, err := quote.Parse(evidence(t, name).Quote)
			if err != nil {
				t.Fatal(err)
			}
			own := int(q.QEReport.ISVSVN)
			for _, c := range []struct {
				min  int
				code string
			}{{own, ""}, {MinQESVN - 1, ""}, {0, ""}, {own + 1, "sgx.qe.svn"}, {65535, "sgx.qe.svn"}} {
				v, err := New(Options{Policy: qeMin(testPolicy(t), c.min)})
				if err != nil {
					t.Fatal(err)
				}
				if c.code == "" {
					if _, err := v.Verify(context.Background(), request(t, name)); err != nil {
						t.Errorf("min_qe_svn %d (QE ISVSVN %d): %v", c.min, own, err)
					}
					continue
				}
				expectCode(t, v, request(t, name), c.code)
				_, err = v.Verify(context.Background(), request(t, name))
				for _, want := range []string{"ISVSVN " + strconv.Itoa(own), "minimum " + strconv.Itoa(c.min), "sgx.min_qe_svn"} {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("min_qe_svn %d: error %v does not say %q", c.min, err, want)
					}
				}
			}
		})
	}
}

func TestMinQESVNValidate(t *testing.T) {
	for _, n := range []int{-1, 65536} {
		err := qeMin(testPolicy(t), n).Validate()
		if err == nil || !strings.Contains(err.Error(), "sgx.min_qe_svn") {
			t.Errorf("min_qe_svn %d: %v", n, err)
		}
	}
}
