package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// BenchmarkSNPVerify measures full verifications of the Milan evidence
// (decode, cached chain, report signature, validate, policy) in parallel.
func BenchmarkSNPVerify(b *testing.B) {
	v := newVerifier(b, stewardPolicy(b))
	req := milanRequest(b)
	if _, err := v.Verify(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// ecdsaFloor returns one raw verification of the Milan report: SHA-384 and
// an ECDSA P-384 verification with the VCEK key.
func ecdsaFloor(b *testing.B) func() bool {
	e, err := envelope.DecodeSnpEvidence(milanRequest(b).Extension.Value)
	if err != nil {
		b.Fatal(err)
	}
	vcek, err := x509.ParseCertificate(e.VCEK)
	if err != nil {
		b.Fatal(err)
	}
	pub := vcek.PublicKey.(*ecdsa.PublicKey)
	sig, err := abi.ReportToSignatureDER(e.Report)
	if err != nil {
		b.Fatal(err)
	}
	signed := abi.SignedComponent(e.Report)
	return func() bool {
		h := sha512.Sum384(signed)
		return ecdsa.VerifyASN1(pub, h[:], sig)
	}
}

// BenchmarkECDSAP384Verify is the floor, in parallel.
func BenchmarkECDSAP384Verify(b *testing.B) {
	floor := ecdsaFloor(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !floor() {
				b.Error("signature does not verify")
				return
			}
		}
	})
}

// BenchmarkSNPRatio measures both rates in one run, alternating, with
// GOMAXPROCS workers, and reports SNP verifications/s and their ratio to raw
// ECDSA P-384 verifications/s (goal: ratio ≥ 0.5, ≥ 2000 snp/s on 2 cores).
// This is the warm figure: the verifier has seen the VCEK chain before and
// serves it from its cache, as a Steward does for every Keep of a host
// after the first; BenchmarkSNPColdChain is the cold one.
//
//	go test ./attestation/snp -run XXX -bench SNPRatio -benchtime 3x
func BenchmarkSNPRatio(b *testing.B) {
	v := newVerifier(b, stewardPolicy(b))
	req := milanRequest(b)
	floor := ecdsaFloor(b)
	full := func() bool {
		_, err := v.Verify(context.Background(), req)
		return err == nil
	}
	if !floor() || !full() {
		b.Fatal("warm-up verification failed")
	}
	// Short alternating rounds, so that load from elsewhere on the machine
	// hits both measurements alike.
	const perRound, rounds = 200, 5
	var ecdsaTotal, snpTotal time.Duration
	for range b.N * rounds {
		ecdsaTotal += timeParallel(b, perRound, floor)
		snpTotal += timeParallel(b, perRound, full)
	}
	ecdsaRate := float64(perRound*rounds*b.N) / ecdsaTotal.Seconds()
	snpRate := float64(perRound*rounds*b.N) / snpTotal.Seconds()
	b.ReportMetric(ecdsaRate, "ecdsa/s")
	b.ReportMetric(snpRate, "snp/s")
	b.ReportMetric(snpRate/ecdsaRate, "ratio")
}

// timeParallel runs f n times on GOMAXPROCS goroutines and returns the
// elapsed time.
func timeParallel(b *testing.B, n int, f func() bool) time.Duration {
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if !f() {
					b.Error("verification failed")
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// coldFloor returns the least crypto a verifier with no cached chain must
// do for the Milan evidence: the VCEK's signature by its ASK, every CRL's
// signature by its ARK, and the report's ECDSA P-384 signature.
func coldFloor(b *testing.B) func() bool {
	e, err := envelope.DecodeSnpEvidence(milanRequest(b).Extension.Value)
	if err != nil {
		b.Fatal(err)
	}
	vcek, err := x509.ParseCertificate(e.VCEK)
	if err != nil {
		b.Fatal(err)
	}
	roots, err := DefaultRoots()
	if err != nil {
		b.Fatal(err)
	}
	var ask *x509.Certificate
	for _, r := range roots {
		if bytes.Equal(vcek.RawIssuer, r.ASK.RawSubject) {
			ask = r.ASK
		}
	}
	if ask == nil {
		b.Fatal("no ASK for the Milan VCEK")
	}
	report := ecdsaFloor(b)
	return func() bool {
		if vcek.CheckSignatureFrom(ask) != nil {
			return false
		}
		for _, c := range e.CRLs {
			l, err := x509.ParseRevocationList(c.CRL)
			if err != nil {
				return false
			}
			ok := false
			for _, r := range roots {
				if bytes.Equal(l.RawIssuer, r.ARK.RawSubject) && l.CheckSignatureFrom(r.ARK) == nil {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return report()
	}
}

// BenchmarkSNPColdChain is BenchmarkSNPRatio for a Steward that has never
// seen the chain: every verification starts from a new Verifier (so the
// VCEK chain, the CRLs and go-sev-guest's cross-check are all done again),
// against coldFloor, alternating in one run. BenchmarkSNPRatio is the warm
// figure: one chain verified once and then served from the cache.
//
//	go test ./attestation/snp -run XXX -bench SNPColdChain -benchtime 3x
func BenchmarkSNPColdChain(b *testing.B) {
	p := stewardPolicy(b)
	req := milanRequest(b)
	floor := coldFloor(b)
	full := func() bool {
		v, err := New(Options{Policy: p})
		if err != nil {
			return false
		}
		_, err = v.Verify(context.Background(), req)
		return err == nil
	}
	if !floor() || !full() {
		b.Fatal("warm-up verification failed")
	}
	const perRound, rounds = 20, 5
	var floorTotal, coldTotal time.Duration
	for range b.N * rounds {
		floorTotal += timeParallel(b, perRound, floor)
		coldTotal += timeParallel(b, perRound, full)
	}
	n := float64(perRound * rounds * b.N)
	b.ReportMetric(n/floorTotal.Seconds(), "floor/s")
	b.ReportMetric(n/coldTotal.Seconds(), "cold-snp/s")
	b.ReportMetric(floorTotal.Seconds()/coldTotal.Seconds(), "cold-ratio")
}
