// Package snp produces SEV-SNP evidence inside a confidential VM: an
// ATTESTATION_REPORT whose REPORT_DATA binds the Keep key, with the VCEK and
// AMD CRLs, in upstream Enarx's SnpEvidence envelope (so an unmodified
// upstream Steward accepts it too).
//
// Report sources, in order: configfs-tsm (provider "sev_guest"), then the
// /dev/sev-guest device through github.com/google/go-sev-guest/client. The
// VCEK comes from the extended report's certificate table (auxblob) when the
// host provisioned a parsable one (on /dev/sev-guest, of at most
// maxCertTable bytes), otherwise from the local collateral cache
// (Cache.VCEK); the CRLs always come from the cache, which
// `enarx platform snp fetch` fills.
//
// Trust: the SEV firmware (through the kernel) signs the report; the cache
// and the certificate table are host-controlled and only transported here —
// the Steward verifies the VCEK chain and the CRLs.
package snp

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/evidence/tsm"
)

// Provider is the SNP attest.EvidenceProvider.
type Provider struct {
	// TSM is the configfs-tsm source; nil uses the real kernel interface.
	TSM *tsm.Source
	// OpenDevice opens the sev-guest device for the fallback path; nil uses
	// go-sev-guest's client.OpenDevice (/dev/sev-guest). Tests inject fakes.
	OpenDevice func() (client.Device, error)
	// Cache holds the VCEK fallback and the AMD CRLs.
	Cache *Cache
	// Logger, if nil, slog.Default.
	Logger *slog.Logger
}

var _ attest.EvidenceProvider = (*Provider)(nil)

// Kind implements attest.EvidenceProvider.
func (*Provider) Kind() attest.Kind { return attest.KindSNP }

// Report is a raw report with the certificate table that came with it.
type Report struct {
	Raw       []byte // ATTESTATION_REPORT, abi.ReportSize bytes
	CertTable []byte // AMD certificate table, may be empty
	Source    string // "configfs-tsm" or "/dev/sev-guest"
}

// GetReport fetches a report binding reportData, trying configfs-tsm first.
func (p *Provider) GetReport(ctx context.Context, reportData [64]byte) (*Report, error) {
	src := p.TSM
	if src == nil {
		src = &tsm.Source{}
	}
	resp, err := src.Get(ctx, tsm.Request{InBlob: reportData, Provider: tsm.ProviderSNP, AuxBlob: true})
	var r *Report
	switch {
	case err == nil:
		r = &Report{Raw: resp.OutBlob, CertTable: resp.AuxBlob, Source: "configfs-tsm"}
	case errors.Is(err, tsm.ErrUnavailable):
		p.logger().Debug("configfs-tsm unavailable, using /dev/sev-guest", "err", err)
		r, err = p.deviceReport(reportData)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("SEV-SNP report via configfs-tsm: %w", err)
	}
	if len(r.Raw) < abi.ReportSize {
		return nil, fmt.Errorf("SEV-SNP report from %s is %d bytes, want %d: the kernel returned a short report", r.Source, len(r.Raw), abi.ReportSize)
	}
	r.Raw = r.Raw[:abi.ReportSize]
	if err := abi.ValidateReportFormat(r.Raw); err != nil {
		return nil, fmt.Errorf("SEV-SNP report from %s: %w", r.Source, err)
	}
	// REPORT_DATA is at offset 0x50. A report that does not carry what we
	// asked for is useless (and would be rejected by the Steward); say so here.
	if !bytes.Equal(r.Raw[0x50:0x90], reportData[:]) {
		return nil, fmt.Errorf("SEV-SNP report from %s does not carry the requested report data", r.Source)
	}
	return r, nil
}

func (p *Provider) deviceReport(reportData [64]byte) (*Report, error) {
	open := p.OpenDevice
	if open == nil {
		open = func() (client.Device, error) { return client.OpenDevice() }
	}
	d, err := open()
	if err != nil {
		return nil, fmt.Errorf("no SEV-SNP guest interface: configfs-tsm has no sev_guest provider and the sev-guest device cannot be opened: %w", err)
	}
	defer d.Close()
	lim := &certLimit{Device: d}
	// Deprecated in go-sev-guest in favour of QuoteProvider, which would
	// choose configfs-tsm again; this is the explicit device fallback for
	// kernels without it, and the device ioctl is what it needs.
	//lint:ignore SA1019 the explicit /dev/sev-guest fallback (see above)
	raw, certs, err := client.GetRawExtendedReport(lim, reportData)
	if err != nil && lim.asked > 0 {
		// No certificate table, then: the cached VCEK stands in.
		p.logger().Warn("ignoring the SEV-SNP certificate table: the host asks for a buffer larger than any table", "source", "/dev/sev-guest", "bytes", lim.asked, "limit", maxCertTable)
		//lint:ignore SA1019 the explicit /dev/sev-guest fallback (see above)
		raw, err = client.GetRawReport(d, reportData)
		certs = nil
	}
	if err != nil {
		return nil, fmt.Errorf("SEV-SNP extended report via /dev/sev-guest: %w", err)
	}
	return &Report{Raw: raw, CertTable: certs, Source: "/dev/sev-guest"}, nil
}

// maxCertTable bounds the certificate table the /dev/sev-guest path makes
// room for. The kernel refuses more than 16 KiB (SEV_FW_BLOB_MAX_SIZE); a
// table with a VCEK or VLEK, the ASK and the ARK is about 5 KiB.
const maxCertTable = 64 << 10

// errCertTableTooLarge is what certLimit answers a length query with.
var errCertTableTooLarge = errors.New("the host asks for an SEV-SNP certificate buffer larger than any certificate table")

// certLimit is a sev-guest device that refuses the extended report's
// certificate length query when the answer exceeds maxCertTable. The answer
// is the host's page count, which the kernel passes on (up to 4 GiB), and
// go-sev-guest's GetRawExtendedReport allocates a buffer of that size
// before the kernel refuses it.
type certLimit struct {
	client.Device
	asked uint32 // the length refused, 0 if none
}

func (c *certLimit) Ioctl(cmd uintptr, req any) (uintptr, error) {
	res, err := c.Device.Ioctl(cmd, req)
	if cmd != labi.IocSnpGetExtendedReport {
		return res, err
	}
	ug, ok := req.(*labi.SnpUserGuestRequest)
	if !ok {
		return res, err
	}
	if ext, ok := ug.ReqData.(*labi.SnpExtendedReportReq); ok && ext.CertsLength > maxCertTable && uint64(ext.CertsLength) > uint64(len(ext.Certs)) {
		c.asked = ext.CertsLength
		ug.FwErr = 0 // else go-sev-guest reports the firmware's "invalid length" instead
		return 0, errCertTableTooLarge
	}
	return res, err
}

// Evidence implements attest.EvidenceProvider: the DER SnpEvidence.
func (p *Provider) Evidence(ctx context.Context, reportData [64]byte) ([]byte, error) {
	r, err := p.GetReport(ctx, reportData)
	if err != nil {
		return nil, err
	}
	vcek, err := p.vcek(r)
	if err != nil {
		return nil, err
	}
	if p.Cache == nil {
		return nil, errors.New("SEV-SNP evidence needs the AMD CRLs: no collateral cache configured; run `enarx platform snp fetch`")
	}
	crls, err := p.Cache.CRLs()
	if err != nil {
		return nil, err
	}
	ev := envelope.SnpEvidence{VCEK: vcek, CRLs: crls, Report: r.Raw}
	der, err := ev.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding SnpEvidence: %w", err)
	}
	return der, nil
}

// vcek returns the VCEK DER from the certificate table, else from the cache.
func (p *Provider) vcek(r *Report) ([]byte, error) {
	if len(r.CertTable) > 0 {
		if t, err := parseCertTable(r.CertTable); err != nil {
			p.logger().Warn("ignoring malformed SEV-SNP certificate table", "source", r.Source, "err", err)
		} else if v, err := t.GetByGUIDString(abi.VcekGUID); err == nil && len(v) > 0 {
			_, err := x509.ParseCertificate(v)
			if err == nil {
				return v, nil
			}
			// The host provisions the table; a broken entry would only be
			// refused by the Steward, so fall back to the cache.
			p.logger().Warn("ignoring an SEV-SNP certificate table VCEK that is not a certificate", "source", r.Source, "err", err)
		}
	}
	if p.Cache == nil {
		return nil, errors.New("no VCEK in the extended report and no collateral cache configured; run `enarx platform snp fetch`")
	}
	id, err := IdentifyReport(r.Raw)
	if err != nil {
		return nil, err
	}
	return p.Cache.VCEK(id)
}

// parseCertTable decodes the host-provided certificate table. It checks
// every entry's byte range in 64 bits before go-sev-guest's
// CertTable.Unmarshal, which adds offset and length as uint32: an entry
// whose sum wraps around passes its check and then panics its slice.
func parseCertTable(b []byte) (*abi.CertTable, error) {
	entries, err := abi.ParseSnpCertTableHeader(b)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if uint64(e.Offset)+uint64(e.Length) > uint64(len(b)) {
			return nil, fmt.Errorf("certificate table entry %d (offset %d, length %d) lies outside the %d-byte table", i, e.Offset, e.Length, len(b))
		}
	}
	var t abi.CertTable
	if err := t.Unmarshal(b); err != nil {
		return nil, err
	}
	return &t, nil
}

func (p *Provider) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}
