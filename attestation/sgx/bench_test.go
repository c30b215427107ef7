package sgx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
)

// rawECDSA is the baseline: one ECDSA P-256/SHA-256 verification of a
// 432-byte message (the size the ISV signature covers).
type rawECDSA struct {
	key *ecdsa.PublicKey
	msg []byte
	sig []byte
}

func newRawECDSA(b *testing.B) *rawECDSA {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	r := &rawECDSA{key: &k.PublicKey, msg: make([]byte, 432)}
	d := sha256.Sum256(r.msg)
	if r.sig, err = ecdsa.SignASN1(rand.Reader, k, d[:]); err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *rawECDSA) verify(b *testing.B) {
	d := sha256.Sum256(r.msg)
	if !ecdsa.VerifyASN1(r.key, d[:], r.sig) {
		b.Fatal("verify failed")
	}
}

// compare times op and the raw ECDSA baseline interleaved, one of each per
// iteration, so machine noise hits both alike, and reports both rates and
// their ratio (the goal is ratio ≥ 0.5).
func compare(b *testing.B, op func()) {
	base := newRawECDSA(b)
	var tOp, tBase time.Duration
	for b.Loop() {
		s := time.Now()
		op()
		m := time.Now()
		base.verify(b)
		tBase += time.Since(m)
		tOp += m.Sub(s)
	}
	opRate := float64(b.N) / tOp.Seconds()
	baseRate := float64(b.N) / tBase.Seconds()
	b.ReportMetric(opRate, "sgx-verifies/s")
	b.ReportMetric(baseRate, "ecdsa-p256-verifies/s")
	b.ReportMetric(opRate/baseRate, "ratio")
}

// BenchmarkVerify measures full SGX verifications with warm caches
// (envelope decode, quote parse, cached PCK chain / CRL / TCB Info / QE
// results, ISV signature, binding, policy) against raw ECDSA P-256:
//
//	go test -run '^$' -bench Verify -benchtime 2s ./attestation/sgx
func BenchmarkVerify(b *testing.B) {
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			v := NewVerifier(Options{Policy: testPolicy(b)})
			req := request(b, name)
			ctx := context.Background()
			compare(b, func() {
				if _, err := v.Verify(ctx, req); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkVerifyCold is the same without caches: every request pays the
// chain, CRL, TCB Info and QE signature checks.
func BenchmarkVerifyCold(b *testing.B) {
	req := request(b, names[0])
	pol := testPolicy(b)
	ctx := context.Background()
	compare(b, func() {
		if _, err := NewVerifier(Options{Policy: pol}).Verify(ctx, req); err != nil {
			b.Fatal(err)
		}
	})
}

// TestConcurrentVerify runs verifications in parallel (run with -race) to
// exercise the shared caches, with a cache too small to hold everything.
func TestConcurrentVerify(t *testing.T) {
	v := NewVerifier(Options{Policy: testPolicy(t), CacheSize: 2})
	reqs := []*attest.VerifyRequest{request(t, names[0]), request(t, names[1])}
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for j := range 5 {
				if _, e := v.Verify(context.Background(), reqs[(i+j)%2]); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
