package steward_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/enarx-go/enarx/steward"
)

// BenchmarkIssuanceRatio measures, in one run and interleaved so that all
// three see the same machine state:
//
//   - the raw ECDSA P-256 sign+verify rate (the floor any CA pays per
//     certificate: verify the CSR, sign the leaf),
//   - in-process issuance (Server.Issue: parse, check, verify KVM evidence,
//     sign; crypto/x509 also re-verifies the signature it made),
//   - full HTTP issuance (POST / on a real 127.0.0.1 server, keep-alive).
//
// It reports each rate and the ratios issue/ecdsa and http/ecdsa:
//
//	go test -run '^$' -bench IssuanceRatio -benchtime 2000x ./steward/
func BenchmarkIssuanceRatio(b *testing.B) {
	ca := debugCA(b)
	s, hs := newServer(b, steward.Config{CA: ca})
	key := p256(b)
	wext, _ := workloadExt(b)
	der := goCSR(b, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), wext}})
	client := &http.Client{Transport: &http.Transport{}}
	ctx := context.Background()
	digest := sha256.Sum256(der)

	var tECDSA, tIssue, tHTTP time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		sig, err := ecdsa.SignASN1(rand.Reader, ca.Key, digest[:])
		if err != nil || !ecdsa.VerifyASN1(&ca.Key.PublicKey, digest[:], sig) {
			b.Fatal("ecdsa sign/verify failed", err)
		}
		t1 := time.Now()
		if _, err := s.Issue(ctx, der); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		resp, err := client.Post(hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		t3 := time.Now()
		tECDSA += t1.Sub(t0)
		tIssue += t2.Sub(t1)
		tHTTP += t3.Sub(t2)
	}
	n := float64(b.N)
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	b.ReportMetric(rate(tECDSA), "ecdsa-sign+verify/s")
	b.ReportMetric(rate(tIssue), "issue/s")
	b.ReportMetric(rate(tHTTP), "http-issue/s")
	b.ReportMetric(tECDSA.Seconds()/tIssue.Seconds(), "issue/ecdsa")
	b.ReportMetric(tECDSA.Seconds()/tHTTP.Seconds(), "http/ecdsa")
}
