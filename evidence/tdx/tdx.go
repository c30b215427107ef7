// Package tdx produces Intel TDX evidence inside a trust domain: a TD quote
// (v4; v5 from TDX 1.5 is refused with a clear error until go-tdx-guest
// parses it) whose REPORTDATA binds the Keep key (attest.ReportData: SHA-384
// of the key's SubjectPublicKeyInfo, zero-padded), with the collateral an
// offline verifier needs (Intel root and PCK CRLs, TDX TCB Info, TDX QE
// Identity), in this project's TdxEvidence envelope (OID
// 1.3.6.1.4.1.58270.1.4).
//
// Quote sources, in order: configfs-tsm (provider "tdx_guest"), then the
// /dev/tdx_guest device through github.com/google/go-tdx-guest/client. The
// collateral comes from the local cache that `enarx platform tdx fetch`
// fills from Intel's PCS.
//
// Trust: the TDX module and the quoting enclave (through the kernel) sign
// the quote; the cache is host-controlled and only transported here — the
// Steward verifies every signature and validity window.
package tdx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/go-tdx-guest/client"
	labi "github.com/google/go-tdx-guest/client/linuxabi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
	"github.com/enarx-go/enarx/evidence/tsm"
)

// Provider is the TDX attest.EvidenceProvider.
type Provider struct {
	// TSM is the configfs-tsm source; nil uses the real kernel interface.
	TSM *tsm.Source
	// OpenDevice opens the tdx-guest device for the fallback path; nil uses
	// go-tdx-guest's client.OpenDevice (/dev/tdx_guest).
	OpenDevice func() (client.Device, error)
	// Cache holds the collateral.
	Cache *Cache
	// Logger, if nil, slog.Default.
	Logger *slog.Logger
}

var _ attest.EvidenceProvider = (*Provider)(nil)

// Kind implements attest.EvidenceProvider.
func (*Provider) Kind() attest.Kind { return attest.KindTDX }

// Quote is a raw quote and where it came from.
type Quote struct {
	Raw    []byte
	Source string
}

// maxQuote bounds a quote (real ones are ~5 KiB with the PCK chain).
const maxQuote = 64 << 10

// GetQuote fetches a quote binding reportData, trying configfs-tsm first.
func (p *Provider) GetQuote(ctx context.Context, reportData [64]byte) (*Quote, error) {
	src := p.TSM
	if src == nil {
		src = &tsm.Source{}
	}
	var q *Quote
	resp, err := src.Get(ctx, tsm.Request{InBlob: reportData, Provider: tsm.ProviderTDX})
	switch {
	case err == nil:
		q = &Quote{Raw: resp.OutBlob, Source: "configfs-tsm"}
	case errors.Is(err, tsm.ErrUnavailable):
		p.logger().Debug("configfs-tsm unavailable, using /dev/tdx_guest", "err", err)
		open := p.OpenDevice
		if open == nil {
			open = func() (client.Device, error) { return client.OpenDevice() }
		}
		d, err := open()
		if err != nil {
			return nil, fmt.Errorf("no TDX guest interface: configfs-tsm has no tdx_guest provider and the tdx-guest device cannot be opened: %w", err)
		}
		raw, err := client.GetRawQuote(quoteLimit{d}, reportData)
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("TDX quote via /dev/tdx_guest: %w", err)
		}
		q = &Quote{Raw: raw, Source: "/dev/tdx_guest"}
	default:
		return nil, fmt.Errorf("TDX quote via configfs-tsm: %w", err)
	}
	if len(q.Raw) > maxQuote {
		return nil, fmt.Errorf("TDX quote from %s is %d bytes, more than %d", q.Source, len(q.Raw), maxQuote)
	}
	parsed, err := parseQuote(q.Raw)
	if err != nil {
		return nil, fmt.Errorf("TDX quote from %s: %w", q.Source, err)
	}
	if got := ReportData(parsed); !bytes.Equal(got, reportData[:]) {
		return nil, fmt.Errorf("TDX quote from %s does not carry the requested report data", q.Source)
	}
	return q, nil
}

// quoteLimit is a tdx-guest device that refuses a GetQuote answer whose
// quote length does not fit the buffer it came in. The VMM writes that
// length into the shared buffer's header and the driver returns it as it
// is; go-tdx-guest slices the buffer by it unchecked, so a larger one
// panicked the Keep.
type quoteLimit struct{ client.Device }

func (q quoteLimit) Ioctl(cmd uintptr, req any) (uintptr, error) {
	res, err := q.Device.Ioctl(cmd, req)
	if err != nil || cmd != labi.IocTdxGetQuote {
		return res, err
	}
	if r, ok := req.(*labi.TdxQuoteReq); ok {
		if h, ok := r.Buffer.(*labi.TdxQuoteHdr); ok && uint64(h.OutLen) > uint64(len(h.Data)) {
			return 0, fmt.Errorf("the host's quoting service claims a quote length of %d bytes, more than the %d-byte buffer it answered in (a faulty or hostile host: check its quoting service (QGS), or run the Keep on another host)", h.OutLen, len(h.Data))
		}
	}
	return res, nil
}

// parseQuote parses a raw quote, naming a quote version this build cannot
// verify instead of calling it corrupt. The quote comes from the host's
// quoting service, so it goes through tdxquote, which checks the length
// fields go-tdx-guest slices by unchecked (a bad one panicked here).
func parseQuote(raw []byte) (*pb.QuoteV4, error) {
	if len(raw) >= 2 {
		if v := binary.LittleEndian.Uint16(raw); v != 4 {
			return nil, fmt.Errorf("quote version %d is not supported (only v4; v5 is TDX 1.5, which needs a newer enarx)", v)
		}
	}
	q, err := tdxquote.ParseV4(raw)
	if err != nil {
		return nil, fmt.Errorf("quote does not parse (short or corrupt): %w", err)
	}
	return q, nil
}

// ReportData returns the REPORTDATA of a parsed quote (v4; nil otherwise).
func ReportData(q any) []byte {
	if v4, ok := q.(*pb.QuoteV4); ok {
		return v4.GetTdQuoteBody().GetReportData()
	}
	return nil
}

// Evidence implements attest.EvidenceProvider: the DER TdxEvidence.
func (p *Provider) Evidence(ctx context.Context, reportData [64]byte) ([]byte, error) {
	q, err := p.GetQuote(ctx, reportData)
	if err != nil {
		return nil, err
	}
	if p.Cache == nil {
		return nil, errors.New("TDX evidence needs Intel collateral: no collateral cache configured; run `enarx platform tdx fetch`")
	}
	col, err := p.Cache.Collateral()
	if err != nil {
		return nil, err
	}
	ev := envelope.TdxEvidence{Quote: q.Raw, CRLs: col.CRLs, TCB: col.TCB, QEIdentity: col.QEIdentity}
	return ev.Marshal()
}

// PCKCertificate extracts the PCK leaf certificate from a raw quote
// (certification data type 6 → type 5 PEM chain).
func PCKCertificate(raw []byte) (*x509.Certificate, error) {
	v4, err := parseQuote(raw)
	if err != nil {
		return nil, err
	}
	chain := v4.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	blk, _ := pem.Decode(chain)
	if blk == nil {
		return nil, errors.New("quote carries no PEM PCK certificate chain")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// FMSPC returns the platform's FMSPC (hex) from the PCK certificate in a
// quote: it selects the TCB Info to fetch.
func FMSPC(raw []byte) (string, error) {
	pck, err := PCKCertificate(raw)
	if err != nil {
		return "", err
	}
	ext, err := pcs.PckCertificateExtensions(pck)
	if err != nil {
		return "", fmt.Errorf("PCK certificate extensions: %w", err)
	}
	return ext.FMSPC, nil
}

func (p *Provider) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}
