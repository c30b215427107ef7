package snp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/evidence/tsm"
)

var (
	rootOnce sync.Once
	root     *emulated.SNPRoot
	rootErr  error
)

// signer is the stand-in for the AMD secure processor: the emulated root.
func signer(t testing.TB) *emulated.SNPRoot {
	t.Helper()
	rootOnce.Do(func() { root, rootErr = emulated.NewSNPRoot() })
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return root
}

func certTable(t testing.TB, vcek []byte) []byte {
	t.Helper()
	ct := &abi.CertTable{Entries: []abi.CertTableEntry{{GUID: uuidMust(abi.VcekGUID), RawCert: vcek}}}
	return ct.Marshal()
}

// fakeTSM is a configfs-tsm with the sev_guest provider whose "firmware" is
// the emulated root.
func fakeTSM(t *testing.T, provider string, aux []byte, mutate func([]byte) []byte) *tsm.Source {
	r := signer(t)
	sub := faketsm.ReportV7(0)
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "auxblob":
			if aux == nil {
				return nil, os.ErrNotExist
			}
			return aux, nil
		case "outblob":
			var rd [64]byte
			copy(rd[:], e.InAttrs["inblob"].Value)
			raw, err := r.SignReport(rd, emulated.SNPOptions{})
			if err != nil {
				return nil, err
			}
			if mutate != nil {
				raw = mutate(raw)
			}
			return raw, nil
		}
		return nil, os.ErrNotExist
	}
	return &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}, Backoff: time.Millisecond}
}

func unavailableTSM() *tsm.Source {
	return &tsm.Source{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{}}}
}

// fakeDevice is a /dev/sev-guest that answers extended report requests
// (and plain ones, which the fallback path asks for).
type fakeDevice struct {
	r     *emulated.SNPRoot
	certs []byte
	// need, if non-zero, is the certificate buffer length the host claims
	// to need (the kernel passes on the page count it returns), instead of
	// len(certs).
	need uint32
	// maxBuf is the largest certificate buffer the guest handed in.
	maxBuf int
}

func (*fakeDevice) Open(string) error        { return nil }
func (*fakeDevice) Close() error             { return nil }
func (*fakeDevice) Product() *spb.SevProduct { return abi.DefaultSevProduct() }
func (d *fakeDevice) Ioctl(cmd uintptr, arg any) (uintptr, error) {
	req, ok := arg.(*labi.SnpUserGuestRequest)
	if !ok {
		return 0, syscall.ENOTTY
	}
	if cmd == labi.IocSnpGetReport {
		raw, err := d.r.SignReport(req.ReqData.(*labi.SnpReportReqABI).ReportData, emulated.SNPOptions{})
		if err != nil {
			return 0, err
		}
		rsp := req.RespData.(*labi.SnpReportRespABI)
		copy(rsp.Data[:], raw)
		rsp.ReportSize = uint32(len(raw))
		return uintptr(labi.EsOk), nil
	}
	if cmd != labi.IocSnpGetExtendedReport {
		return 0, syscall.ENOTTY
	}
	ext := req.ReqData.(*labi.SnpExtendedReportReq)
	d.maxBuf = max(d.maxBuf, len(ext.Certs))
	need := uint32(len(d.certs))
	if d.need != 0 {
		need = d.need
	}
	if ext.CertsLength < need {
		req.FwErr = uint64(abi.GuestRequestInvalidLength)
		ext.CertsLength = need
		return 0, syscall.EIO
	}
	raw, err := d.r.SignReport(ext.Data.ReportData, emulated.SNPOptions{})
	if err != nil {
		return 0, err
	}
	rsp := req.RespData.(*labi.SnpReportRespABI)
	copy(rsp.Data[:], raw)
	rsp.ReportSize = uint32(len(raw))
	copy(ext.Certs, d.certs)
	return uintptr(labi.EsOk), nil
}

func cacheWithCRLs(t *testing.T) *Cache {
	t.Helper()
	c := &Cache{Dir: t.TempDir()}
	crl, err := signer(t).CRL(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutCRLs(envelope.CrlList{{URL: "https://kdsintf.amd.com/vcek/v1/Milan/crl", CRL: crl}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// cacheWithVCEK is cacheWithCRLs holding r's VCEK too, under the chip
// and TCB of r's reports.
func cacheWithVCEK(t *testing.T, r *emulated.SNPRoot) *Cache {
	t.Helper()
	c := cacheWithCRLs(t)
	putVCEK(t, c, r)
	return c
}

// putVCEK puts r's VCEK in c, under the chip and TCB of r's reports.
func putVCEK(t *testing.T, c *Cache, r *emulated.SNPRoot) {
	t.Helper()
	raw, _ := r.SignReport([64]byte{}, emulated.SNPOptions{})
	id, err := IdentifyReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutVCEK(id, r.VCEK.Raw); err != nil {
		t.Fatal(err)
	}
}

func rdata() [64]byte {
	var b [64]byte
	copy(b[:], "key hash")
	return b
}

func decode(t *testing.T, der []byte) *envelope.SnpEvidence {
	t.Helper()
	ev, err := envelope.DecodeSnpEvidence(der)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestConfigfsWithAuxBlobVCEK(t *testing.T) {
	r := signer(t)
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, certTable(t, r.VCEK.Raw), nil), Cache: cacheWithCRLs(t)}
	der, err := p.Evidence(context.Background(), rdata())
	if err != nil {
		t.Fatal(err)
	}
	ev := decode(t, der)
	if string(ev.VCEK) != string(r.VCEK.Raw) || len(ev.CRLs) != 1 {
		t.Fatalf("evidence has wrong VCEK or CRLs")
	}
	rd := rdata()
	if string(ev.Report[0x50:0x90]) != string(rd[:]) {
		t.Fatal("report does not bind the report data")
	}
}

func TestConfigfsMissingAuxBlobUsesVCEKCache(t *testing.T) {
	r := signer(t)
	c := cacheWithCRLs(t)
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, nil, nil), Cache: c}
	if _, err := p.Evidence(context.Background(), rdata()); err == nil || !strings.Contains(err.Error(), "enarx platform snp fetch") {
		t.Fatalf("without a cached VCEK: want a hint to fetch, got %v", err)
	}
	putVCEK(t, c, r)
	der, err := p.Evidence(context.Background(), rdata())
	if err != nil {
		t.Fatal(err)
	}
	if string(decode(t, der).VCEK) != string(r.VCEK.Raw) {
		t.Fatal("VCEK not taken from the cache")
	}
	ents, err := c.List()
	if err != nil || len(ents) != 2 {
		t.Fatalf("cache list = %+v, %v; want a CRL and a VCEK", ents, err)
	}
	for _, e := range ents {
		if e.Expired || e.NextUpdate.IsZero() {
			t.Fatalf("entry %+v should be valid with an expiry", e)
		}
	}
}

func TestConfigfsShortOutblob(t *testing.T) {
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, nil, func(b []byte) []byte { return b[:100] }), Cache: cacheWithCRLs(t)}
	_, err := p.Evidence(context.Background(), rdata())
	if err == nil || !strings.Contains(err.Error(), "short report") {
		t.Fatalf("want short report error, got %v", err)
	}
}

func TestConfigfsWrongReportData(t *testing.T) {
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, nil, func(b []byte) []byte { b[0x50] ^= 1; return b }), Cache: cacheWithCRLs(t)}
	_, err := p.Evidence(context.Background(), rdata())
	if err == nil || !strings.Contains(err.Error(), "does not carry the requested report data") {
		t.Fatalf("want report data mismatch, got %v", err)
	}
}

func TestConfigfsWrongProvider(t *testing.T) {
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderTDX, nil, nil), Cache: cacheWithCRLs(t)}
	_, err := p.Evidence(context.Background(), rdata())
	if !errors.Is(err, tsm.ErrWrongProvider) {
		t.Fatalf("want ErrWrongProvider, got %v", err)
	}
}

func TestDeviceFallback(t *testing.T) {
	r := signer(t)
	p := &Provider{
		TSM:        unavailableTSM(),
		OpenDevice: func() (client.Device, error) { return &fakeDevice{r: r, certs: certTable(t, r.VCEK.Raw)}, nil },
		Cache:      cacheWithCRLs(t),
	}
	rep, err := p.GetReport(context.Background(), rdata())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != "/dev/sev-guest" {
		t.Fatalf("source = %q", rep.Source)
	}
	if _, err := p.Evidence(context.Background(), rdata()); err != nil {
		t.Fatal(err)
	}
}

func TestNoInterfaceAtAll(t *testing.T) {
	p := &Provider{TSM: unavailableTSM(), OpenDevice: func() (client.Device, error) { return nil, os.ErrNotExist }}
	_, err := p.Evidence(context.Background(), rdata())
	if err == nil || !strings.Contains(err.Error(), "no SEV-SNP guest interface") {
		t.Fatalf("got %v", err)
	}
}

func TestCorruptCacheFiles(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	if err := os.WriteFile(c.Dir+"/"+CRLFile, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CRLs(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("want corrupt error, got %v", err)
	}
	if err := c.PutVCEK(Identity{}, []byte("not a cert")); err == nil {
		t.Fatal("non-certificate VCEK cached")
	}
}

// A certificate table whose VCEK entry is not a certificate (the host
// provisions it) does not end up in the evidence: the cached VCEK does.
func TestConfigfsBrokenAuxBlobVCEKUsesCache(t *testing.T) {
	r := signer(t)
	c := cacheWithVCEK(t, r)
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, certTable(t, []byte("not a certificate")), nil), Cache: c,
		Logger: slog.New(slog.DiscardHandler)}
	der, err := p.Evidence(context.Background(), rdata())
	if err != nil {
		t.Fatal(err)
	}
	if string(decode(t, der).VCEK) != string(r.VCEK.Raw) {
		t.Fatal("the broken VCEK from the certificate table was used instead of the cached one")
	}
}

// A certificate table entry whose offset and length wrap around in 32 bits
// passed go-sev-guest's range check (which adds them as uint32) and
// panicked the Keep when it sliced the table. The host provisions the
// table, so it is refused like any malformed one: the cached VCEK is used.
func TestConfigfsWrappingCertTableEntryUsesCache(t *testing.T) {
	r := signer(t)
	c := cacheWithVCEK(t, r)
	table := make([]byte, 2*abi.CertTableEntrySize) // one entry and the zero terminator
	g := uuidMust(abi.VcekGUID)
	copy(table, g[:])
	binary.LittleEndian.PutUint32(table[16:], 0xffff_fff0) // offset
	binary.LittleEndian.PutUint32(table[20:], 0x20)        // length: offset+length wraps to 0x10
	p := &Provider{TSM: fakeTSM(t, tsm.ProviderSNP, table, nil), Cache: c, Logger: slog.New(slog.DiscardHandler)}
	der, err := p.Evidence(context.Background(), rdata())
	if err != nil {
		t.Fatal(err)
	}
	if string(decode(t, der).VCEK) != string(r.VCEK.Raw) {
		t.Fatal("the cached VCEK was not used")
	}
}

// The host answers the extended report's length query with a page count
// of its choosing, which the kernel passes on (up to 4 GiB); go-sev-guest
// allocated a certificate buffer of that size. The Keep must not: it asks
// for a report without certificates and takes the cached VCEK.
func TestDeviceHugeCertTableLengthUsesCache(t *testing.T) {
	r := signer(t)
	c := cacheWithVCEK(t, r)
	d := &fakeDevice{r: r, certs: certTable(t, r.VCEK.Raw), need: 64 << 20}
	p := &Provider{
		TSM:        unavailableTSM(),
		OpenDevice: func() (client.Device, error) { return d, nil },
		Cache:      c,
		Logger:     slog.New(slog.DiscardHandler),
	}
	der, err := p.Evidence(context.Background(), rdata())
	if d.maxBuf > maxCertTable {
		t.Fatalf("the Keep handed the device a %d-byte certificate buffer because the host asked for it", d.maxBuf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(decode(t, der).VCEK) != string(r.VCEK.Raw) {
		t.Fatal("the cached VCEK was not used")
	}
}

// sparseFile creates p as a sparse file of size bytes (no disk space).
func sparseFile(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// allocated returns how many bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The cache can sit on a disk the host writes: a huge cache file (or a
// link to /dev/zero) was read whole into the Keep's memory. It must be
// refused after a bounded read.
func TestHugeCacheFilesAreNotRead(t *testing.T) {
	const size = 32 << 20
	r := signer(t)
	raw, _ := r.SignReport([64]byte{}, emulated.SNPOptions{})
	id, err := IdentifyReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	sparseFile(t, c.Dir+"/"+CRLFile, size)
	sparseFile(t, c.Dir+"/"+VCEKFile(id), size)
	for name, read := range map[string]func() error{
		"CRLs": func() error { _, err := c.CRLs(); return err },
		"VCEK": func() error { _, err := c.VCEK(id); return err },
		"List": func() error {
			ents, err := c.List()
			if err != nil {
				return err
			}
			var errs []error
			for _, e := range ents {
				if !e.Expired {
					return fmt.Errorf("entry %+v is listed as valid", e)
				}
				errs = append(errs, errors.New(e.Subject))
			}
			return errors.Join(errs...)
		},
	} {
		var err error
		if n := allocated(func() { err = read() }); n >= size {
			t.Errorf("%s: read %d bytes into memory for a %d-byte cache file", name, n, size)
		}
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("%s: got %v, want a size error", name, err)
		}
	}
}
