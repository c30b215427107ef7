package emulated

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// pcsGetter answers go-tdx-guest's collateral requests from an envelope,
// offline, as a Steward would.
type pcsGetter struct {
	ev    *envelope.TdxEvidence
	pckCA *x509.Certificate
}

func chainHeader(certs ...[]byte) []string {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return []string{url.QueryEscape(string(b))}
}

func (g pcsGetter) Get(u string) (map[string][]string, []byte, error) {
	switch {
	case u == pcs.TcbInfoURL("00806f050000"):
		return map[string][]string{"Tcb-Info-Issuer-Chain": chainHeader(g.ev.TCB.Certs...)}, g.ev.TCB.Report, nil
	case u == pcs.QeIdentityURL():
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": chainHeader(g.ev.QEIdentity.Certs...)}, g.ev.QEIdentity.Report, nil
	}
	for _, c := range g.ev.CRLs {
		if c.URL == u {
			root := g.ev.TCB.Certs[len(g.ev.TCB.Certs)-1]
			return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": chainHeader(g.pckCA.Raw, root)}, c.CRL, nil
		}
	}
	return nil, nil, errors.New("offline: " + u)
}

func TestEmulatedTDXQuoteVerifiesWithGoTdxGuest(t *testing.T) {
	dir := t.TempDir()
	r, err := LoadOrCreateTDXRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	rd := attest.ReportData(attest.KindTDX, spki)
	var mrtd [48]byte
	copy(mrtd[:], bytes.Repeat([]byte{0x5a}, 48))
	p := &TDXProvider{Root: r, Options: TDXOptions{MRTD: mrtd}}
	der, err := p.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := envelope.DecodeTdxEvidence(der)
	if err != nil {
		t.Fatalf("emulated evidence is not a TdxEvidence: %v", err)
	}
	q, err := abi.QuoteToProto(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	body := q.(*pb.QuoteV4).GetTdQuoteBody()
	if !bytes.Equal(body.GetReportData(), rd[:]) || !bytes.Equal(body.GetMrTd(), mrtd[:]) {
		t.Fatal("quote does not carry the report data and MRTD")
	}
	roots := x509.NewCertPool()
	roots.AddCert(r.Root)
	opts := &verify.Options{
		TrustedRoots: roots, GetCollateral: true, CheckRevocations: true,
		Getter: pcsGetter{ev: ev, pckCA: r.PCKCA}, Now: time.Now(),
	}
	if err := verify.TdxQuote(q, opts); err != nil {
		t.Fatalf("go-tdx-guest rejects the emulated quote: %v", err)
	}

	// Intel's real root must reject it.
	opts = &verify.Options{GetCollateral: true, CheckRevocations: true, Getter: pcsGetter{ev: ev, pckCA: r.PCKCA}, Now: time.Now()}
	if err := verify.TdxQuote(q, opts); err == nil {
		t.Fatal("emulated quote verified against Intel's root")
	}

	// A flipped byte in the body breaks the quote signature.
	bad := append([]byte{}, ev.Quote...)
	bad[48+100] ^= 1
	qb, err := abi.QuoteToProto(bad)
	if err != nil {
		t.Fatal(err)
	}
	opts = &verify.Options{TrustedRoots: roots, GetCollateral: true, CheckRevocations: true, Getter: pcsGetter{ev: ev, pckCA: r.PCKCA}, Now: time.Now()}
	if err := verify.TdxQuote(qb, opts); err == nil {
		t.Fatal("tampered quote verified")
	}

	// Reload gives the same hierarchy.
	if again, err := LoadOrCreateTDXRoot(dir); err != nil || !bytes.Equal(again.Root.Raw, r.Root.Raw) {
		t.Fatalf("reload: %v", err)
	}
}

func TestEmulatedTDXDebug(t *testing.T) {
	r, err := NewTDXRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := r.SignQuote([64]byte{}, TDXOptions{Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.QuoteToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.(*pb.QuoteV4).GetTdQuoteBody().GetTdAttributes()[0]&1 != 1 {
		t.Fatal("DEBUG attribute not set")
	}
}

// Keeps started together on a fresh machine all end up with the root that
// stays on disk (the one a Steward policy will name), not each with its own.
func TestConcurrentFirstUseSharesOneRoot(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	roots := make([]*TDXRoot, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := LoadOrCreateTDXRoot(dir)
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = r
		})
	}
	wg.Wait()
	onDisk, err := LoadOrCreateTDXRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range roots {
		if r == nil || !bytes.Equal(r.Root.Raw, onDisk.Root.Raw) {
			t.Fatalf("caller %d got a root that is not the one on disk", i)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files left in %s, want just the root", len(ents), dir)
	}
}
