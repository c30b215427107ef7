package tdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/client"
	labi "github.com/google/go-tdx-guest/client/linuxabi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
	"github.com/enarx-go/enarx/evidence/tsm"
)

// The real production quote shipped with go-tdx-guest stands in for the
// quoting enclave; requests must carry its REPORTDATA to match.
func realReportData(t *testing.T) [64]byte {
	t.Helper()
	q, err := abi.QuoteToProto(testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], q.(*pb.QuoteV4).GetTdQuoteBody().GetReportData())
	return rd
}

func fakeTSM(provider string, out []byte) *tsm.Source {
	sub := faketsm.ReportV7(0)
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "outblob":
			return out, nil
		}
		return nil, os.ErrNotExist
	}
	return &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}, Backoff: time.Millisecond}
}

// fakePCS serves Intel PCS and certificate endpoints from go-tdx-guest's
// recorded responses.
func fakePCS(t *testing.T) *httptest.Server {
	t.Helper()
	pck, err := PCKCertificate(testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	chain := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pck.Raw})))
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/tdx/certification/v4/tcb"):
			w.Header().Set(tcbChainHdr, chain)
			w.Write(testdata.TcbInfoBody)
		case r.URL.Path == "/tdx/certification/v4/qe/identity":
			w.Header().Set(qeIDChainHdr, chain)
			w.Write(testdata.QeIdentityBody)
		case r.URL.Path == "/sgx/certification/v4/pckcrl":
			w.Write(testdata.PckCrlBody)
		case r.URL.Path == "/IntelSGXRootCA.der":
			w.Write(testdata.RootCrlBody)
		default:
			http.NotFound(w, r)
		}
	}))
}

func filledCache(t *testing.T) *Cache {
	t.Helper()
	srv := fakePCS(t)
	defer srv.Close()
	c := &Cache{Dir: t.TempDir()}
	if _, err := Refresh(context.Background(), c, &Fetcher{BaseURL: srv.URL}, testdata.RawQuote); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRefreshAndEvidence(t *testing.T) {
	c := filledCache(t)
	p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, testdata.RawQuote), Cache: c}
	der, err := p.Evidence(context.Background(), realReportData(t))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := envelope.DecodeTdxEvidence(der)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Quote, testdata.RawQuote) || !bytes.Equal(ev.TCB.Report, testdata.TcbInfoBody) ||
		!bytes.Equal(ev.QEIdentity.Report, testdata.QeIdentityBody) || len(ev.CRLs) != 2 {
		t.Fatal("evidence does not carry the quote and the collateral")
	}
	if ev.CRLs[0].URL != RootCACRLURL || !strings.Contains(ev.CRLs[1].URL, "pckcrl?ca=") {
		t.Fatalf("CRL URLs: %q, %q", ev.CRLs[0].URL, ev.CRLs[1].URL)
	}
}

func TestFMSPC(t *testing.T) {
	f, err := FMSPC(testdata.RawQuote)
	if err != nil || f != "50806f000000" {
		t.Fatalf("FMSPC = %q, %v", f, err)
	}
}

func TestWrongReportData(t *testing.T) {
	p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, testdata.RawQuote), Cache: filledCache(t)}
	_, err := p.Evidence(context.Background(), [64]byte{1})
	if err == nil || !strings.Contains(err.Error(), "does not carry the requested report data") {
		t.Fatalf("got %v", err)
	}
}

func TestShortOutblob(t *testing.T) {
	p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, testdata.RawQuote[:200])}
	_, err := p.GetQuote(context.Background(), realReportData(t))
	if err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("got %v", err)
	}
}

func TestWrongProvider(t *testing.T) {
	p := &Provider{TSM: fakeTSM(tsm.ProviderSNP, testdata.RawQuote)}
	_, err := p.GetQuote(context.Background(), realReportData(t))
	if !errors.Is(err, tsm.ErrWrongProvider) {
		t.Fatalf("got %v", err)
	}
}

func TestMissingCollateral(t *testing.T) {
	p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, testdata.RawQuote), Cache: &Cache{Dir: t.TempDir()}}
	_, err := p.Evidence(context.Background(), realReportData(t))
	if err == nil || !strings.Contains(err.Error(), "enarx platform tdx fetch") {
		t.Fatalf("got %v", err)
	}
}

func TestNoInterface(t *testing.T) {
	p := &Provider{
		TSM:        &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{}}},
		OpenDevice: func() (client.Device, error) { return nil, os.ErrNotExist },
	}
	_, err := p.GetQuote(context.Background(), [64]byte{})
	if err == nil || !strings.Contains(err.Error(), "no TDX guest interface") {
		t.Fatalf("got %v", err)
	}
}

// fakeDevice is a /dev/tdx_guest whose quoting service returns quote.
type fakeDevice struct {
	quote []byte
	// outLen, if non-zero, is the quote length the VMM writes into the
	// shared buffer's header instead of len(quote).
	outLen uint32
}

func (*fakeDevice) Open(string) error { return nil }
func (*fakeDevice) Close() error      { return nil }
func (d *fakeDevice) Ioctl(cmd uintptr, arg any) (uintptr, error) {
	switch cmd {
	case labi.IocTdxGetReport:
		return uintptr(labi.TdxAttestSuccess), nil
	case labi.IocTdxGetQuote:
		hdr := arg.(*labi.TdxQuoteReq).Buffer.(*labi.TdxQuoteHdr)
		hdr.OutLen = uint32(copy(hdr.Data[:], d.quote))
		if d.outLen != 0 {
			hdr.OutLen = d.outLen
		}
		return uintptr(labi.TdxAttestSuccess), nil
	}
	return 0, errors.New("unexpected ioctl")
}

func TestDeviceFallback(t *testing.T) {
	p := &Provider{
		TSM:        &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{}}},
		OpenDevice: func() (client.Device, error) { return &fakeDevice{quote: testdata.RawQuote}, nil },
	}
	q, err := p.GetQuote(context.Background(), realReportData(t))
	if err != nil {
		t.Fatal(err)
	}
	if q.Source != "/dev/tdx_guest" || !bytes.Equal(q.Raw, testdata.RawQuote) {
		t.Fatalf("source %q, %d bytes", q.Source, len(q.Raw))
	}
}

// The VMM fills the GetQuote buffer's header, out_len included, and the
// tdx-guest driver hands it back as it is. go-tdx-guest sliced its 16 KiB
// data array by that length unchecked: a larger one panicked the Keep. It
// must be an error.
func TestDeviceQuoteLengthPastBuffer(t *testing.T) {
	p := &Provider{
		TSM: &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{}}},
		OpenDevice: func() (client.Device, error) {
			return &fakeDevice{quote: testdata.RawQuote, outLen: labi.ReqBufSize + 1}, nil
		},
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("GetQuote panicked on the VMM's quote length: %v", r)
			}
		}()
		_, err = p.GetQuote(context.Background(), realReportData(t))
	}()
	if err == nil || !strings.Contains(err.Error(), "quote length") {
		t.Fatalf("got %v", err)
	}
}

// TestMalformedQuoteLengths: the host's quoting service chooses the
// quote's bytes. Length fields that go-tdx-guest slices by without a check
// panicked the Keep (GetQuote) and `enarx platform tdx fetch` (FMSPC);
// they must be errors.
func TestMalformedQuoteLengths(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(q []byte)
	}{
		{"signed data size 0", func(q []byte) { binary.LittleEndian.PutUint32(q[tdxquote.SignedSizeAt:], 0) }},
		{"QE authentication data past the end", func(q []byte) {
			binary.LittleEndian.PutUint16(q[tdxquote.SignedAt+tdxquote.CertDataAt+tdxquote.QEAuthAt:], 0xffff)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := bytes.Clone(testdata.RawQuote)
			c.f(q)
			if _, err := FMSPC(q); err == nil || !strings.Contains(err.Error(), "does not parse") {
				t.Fatalf("FMSPC: got %v", err)
			}
			p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, q)}
			if _, err := p.GetQuote(context.Background(), realReportData(t)); err == nil || !strings.Contains(err.Error(), "does not parse") {
				t.Fatalf("GetQuote: got %v", err)
			}
		})
	}
}

// A TDX 1.5 machine returns quote v5, which this build cannot parse: the
// error must name the version rather than call the quote corrupt.
func TestQuoteV5IsNamed(t *testing.T) {
	v5 := append([]byte{}, testdata.RawQuote...)
	v5[0] = 5
	p := &Provider{TSM: fakeTSM(tsm.ProviderTDX, v5)}
	_, err := p.GetQuote(context.Background(), realReportData(t))
	if err == nil || !strings.Contains(err.Error(), "quote version 5 is not supported") {
		t.Fatalf("got %v", err)
	}
	if _, err := FMSPC(v5); err == nil || !strings.Contains(err.Error(), "quote version 5") {
		t.Fatalf("FMSPC: got %v", err)
	}
}

func TestCollateralCacheRoundTripAndCorruption(t *testing.T) {
	c := filledCache(t)
	col, err := c.Collateral()
	if err != nil {
		t.Fatal(err)
	}
	if len(col.CRLs) != 2 || len(col.TCB.Report) == 0 || len(col.QEIdentity.Report) == 0 {
		t.Fatalf("collateral lost in the cache: %+v", col)
	}
	if err := os.WriteFile(c.Dir+"/"+CollateralFile, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Collateral(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt cache: %v", err)
	}
}

// The cache can sit on a disk the host writes: a huge collateral file (or
// a link to /dev/zero) was read whole into the Keep's memory. It must be
// refused after a bounded read.
func TestHugeCollateralFileIsNotRead(t *testing.T) {
	// Sparse, 16 times the bound: reading up to the bound (8 MiB) costs
	// io.ReadAll's growing buffers, about twice that, plus what tests
	// running alongside allocate (the race pass); reading the file whole
	// costs all of it.
	const size = 128 << 20
	c := &Cache{Dir: t.TempDir()}
	f, err := os.Create(c.Dir + "/" + CollateralFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil { // sparse: no disk space
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = c.Collateral()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n >= size/2 {
		t.Errorf("read %d bytes into memory for a %d-byte cache file", n, size)
	}
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("got %v, want a size error", err)
	}
}
