package policy

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/snp"
)

// withSNPKeys is the testdata policy with lines added to its [snp] table.
func withSNPKeys(t *testing.T, lines string) []byte {
	t.Helper()
	s := string(vectors.StewardTOML)
	if !strings.Contains(s, "\nabi = ") {
		t.Fatal("testdata policy has no [snp] abi line")
	}
	return []byte(strings.Replace(s, "\nabi = ", "\n"+lines+"\nabi = ", 1))
}

// verifyWith loads doc and verifies the recorded CSR with the verifier for
// its evidence OID.
func verifyWith(t *testing.T, doc, csrDER []byte) (*attest.Claims, error) {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := p.Verifiers(Options{})
	if err != nil {
		t.Fatal(err)
	}
	csr, ext, err := vectors.ParseCSR(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.OID().Equal(ext.Id) {
			return v.Verify(context.Background(), &attest.VerifyRequest{CSR: csr, Extension: ext, Now: vectors.Time})
		}
	}
	t.Fatalf("no verifier for %v", ext.Id)
	return nil, nil
}

func rejectionCode(err error) string {
	if r, ok := attest.AsRejection(err); ok {
		return r.Code
	}
	return ""
}

// TestMinimumLaunchTCBDefault: without minimum_launch_tcb, minimum_tcb
// applies to LAUNCH_TCB too (stricter than upstream); an explicit table,
// even an empty one, replaces it; its values are range-checked like
// minimum_tcb's.
func TestMinimumLaunchTCBDefault(t *testing.T) {
	tcb := kds.TCBParts{BlSpl: 2, TeeSpl: 0, SnpSpl: 6, UcodeSpl: 93}
	for _, c := range []struct {
		name        string
		lines       string
		tcb, launch kds.TCBParts
	}{
		{"neither", "", kds.TCBParts{}, kds.TCBParts{}},
		{"minimum_tcb covers LAUNCH_TCB", "minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }", tcb, tcb},
		{"own launch minimum", "minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }\nminimum_launch_tcb = { bootloader = 1, snp = 5, microcode = 90 }",
			tcb, kds.TCBParts{BlSpl: 1, SnpSpl: 5, UcodeSpl: 90}},
		{"launch minimum opted out", "minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }\nminimum_launch_tcb = {}", tcb, kds.TCBParts{}},
		{"launch minimum only", "minimum_launch_tcb = { snp = 6 }", kds.TCBParts{}, kds.TCBParts{SnpSpl: 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(withSNPKeys(t, c.lines))
			if err != nil {
				t.Fatal(err)
			}
			if p.SNP.MinimumTCB != c.tcb || p.SNP.MinimumLaunchTCB != c.launch {
				t.Fatalf("minimum TCB %+v, launch %+v; want %+v, %+v", p.SNP.MinimumTCB, p.SNP.MinimumLaunchTCB, c.tcb, c.launch)
			}
		})
	}
	for doc, key := range map[string]string{
		"minimum_launch_tcb = { microcode = 256 }": "snp.minimum_launch_tcb.microcode",
		"minimum_launch_tcb = { snp = -1 }":        "snp.minimum_launch_tcb.snp",
		"minimum_launch_tcb = { fmc = 1 }":         "fmc (line", // go-toml names inline-table keys without their table
		"minimum_launch_tcb = { SNP = 1 }":         "unknown key snp.minimum_launch_tcb.SNP",
	} {
		if _, err := Parse(withSNPKeys(t, doc)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v, want one naming %s", doc, err, key)
		}
	}
}

// TestMinimumLaunchTCBMilan: the real Milan evidence (LAUNCH_TCB = BL 2,
// TEE 0, SNP 6, µcode 93) passes a policy at its own TCB, through
// minimum_tcb alone (which then covers LAUNCH_TCB) or an explicit
// minimum_launch_tcb, and fails with a raised launch minimum.
func TestMinimumLaunchTCBMilan(t *testing.T) {
	for _, lines := range []string{
		"minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }",
		"minimum_launch_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }",
	} {
		if _, err := verifyWith(t, withSNPKeys(t, lines), vectors.MilanCSR); err != nil {
			t.Errorf("%q: %v", lines, err)
		}
	}
	_, err := verifyWith(t, withSNPKeys(t, "minimum_tcb = { bootloader = 2, tee = 0, snp = 6, microcode = 93 }\nminimum_launch_tcb = { bootloader = 2, snp = 7, microcode = 93 }"), vectors.MilanCSR)
	if rejectionCode(err) != snp.CodeTCBLaunchMinimum || !strings.Contains(err.Error(), "snp SPL 6 is below 7") {
		t.Fatalf("raised launch minimum: got %v, want %s naming the snp component", err, snp.CodeTCBLaunchMinimum)
	}
}

// TestMinTCBEvaluationDataNumber: the key decodes, is range-checked, and
// the real SGX evidence (TCB Info tcbEvaluationDataNumber 14) passes a
// minimum of 14 and fails one of 15, naming the collateral and both numbers.
func TestMinTCBEvaluationDataNumber(t *testing.T) {
	withKey := func(v string) []byte {
		s := string(vectors.StewardTOML)
		if !strings.Contains(s, "enclave_product_id = 0\n") {
			t.Fatal("testdata policy has no [sgx] enclave_product_id line")
		}
		return []byte(strings.Replace(s, "enclave_product_id = 0\n", "enclave_product_id = 0\nmin_tcb_evaluation_data_number = "+v+"\n", 1))
	}
	p, err := Parse(withKey("14"))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.SGX.MinTCBEvaluationDataNumber; n == nil || *n != 14 {
		t.Fatalf("min_tcb_evaluation_data_number = %v", n)
	}
	for _, csr := range [][]byte{vectors.SGXi5CSR, vectors.SGXXeonCSR} {
		if _, err := verifyWith(t, withKey("14"), csr); err != nil {
			t.Fatalf("minimum 14: %v", err)
		}
		_, err := verifyWith(t, withKey("15"), csr)
		if rejectionCode(err) != "sgx.tcb.eval_data_number" || !strings.Contains(err.Error(), "TCB Info has tcbEvaluationDataNumber 14, below sgx.min_tcb_evaluation_data_number 15") {
			t.Fatalf("minimum 15: got %v", err)
		}
	}
	for v, want := range map[string]string{
		"-1":                                     "sgx.min_tcb_evaluation_data_number: -1 is outside",
		"4294967296":                             "sgx.min_tcb_evaluation_data_number: 4294967296 is outside",
		"\"15\"":                                 "sgx.min_tcb_evaluation_data_number",
		"15\nMin_Tcb_Evaluation_Data_Number = 1": "unknown key sgx.Min_Tcb_Evaluation_Data_Number",
	} {
		if _, err := Parse(withKey(v)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", v, err, want)
		}
	}
}

// TestMinQESVN: [sgx] min_qe_svn decodes and reaches the verifier: the
// real SGX evidence without a QE Identity (Quoting Enclave ISVSVN 9 on the
// i5, 7 on the Xeon) passes a minimum equal to its QE's and fails one
// above.
func TestMinQESVN(t *testing.T) {
	withKey := func(v string) []byte {
		return []byte(strings.Replace(string(vectors.StewardTOML), "enclave_product_id = 0\n", "enclave_product_id = 0\nmin_qe_svn = "+v+"\n", 1))
	}
	p, err := Parse(withKey("7"))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.SGX.MinQESVN; n == nil || *n != 7 {
		t.Fatalf("min_qe_svn = %v", n)
	}
	for _, c := range []struct {
		csr []byte
		qe  int
	}{{vectors.SGXi5CSR, 9}, {vectors.SGXXeonCSR, 7}} {
		if _, err := verifyWith(t, withKey(strconv.Itoa(c.qe)), c.csr); err != nil {
			t.Fatalf("minimum %d: %v", c.qe, err)
		}
		if _, err := verifyWith(t, withKey(strconv.Itoa(c.qe+1)), c.csr); rejectionCode(err) != "sgx.qe.svn" {
			t.Fatalf("minimum %d: got %v", c.qe+1, err)
		}
	}
	if _, err := Parse(withKey("-1")); err == nil || !strings.Contains(err.Error(), "sgx.min_qe_svn") {
		t.Errorf("min_qe_svn = -1: %v", err)
	}
}
