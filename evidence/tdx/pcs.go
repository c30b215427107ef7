package tdx

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// Intel endpoints.
const (
	PCSHost       = "https://api.trustedservices.intel.com"
	CertsHost     = "https://certificates.trustedservices.intel.com"
	RootCACRLURL  = CertsHost + "/IntelSGXRootCA.der"
	maxPCSBody    = 1 << 20
	tcbChainHdr   = "TCB-Info-Issuer-Chain"
	qeIDChainHdr  = "SGX-Enclave-Identity-Issuer-Chain"
	defaultTimout = 30 * time.Second
)

// Fetcher downloads TDX collateral from Intel's PCS.
type Fetcher struct {
	Client *http.Client
	// BaseURL, if set, replaces both Intel hosts (tests point it at 127.0.0.1).
	BaseURL string
}

func (f *Fetcher) url(u string) string {
	if f.BaseURL == "" {
		return u
	}
	b := strings.TrimSuffix(f.BaseURL, "/")
	u = strings.Replace(u, PCSHost, b, 1)
	return strings.Replace(u, CertsHost, b, 1)
}

func (f *Fetcher) get(ctx context.Context, raw string) ([]byte, http.Header, error) {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: defaultTimout}
	}
	u := f.url(raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPCSBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxPCSBody {
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", u, maxPCSBody)
	}
	return b, resp.Header, nil
}

// issuerChain decodes a percent-encoded PEM chain header into DER
// certificates.
func issuerChain(h http.Header, name string) ([][]byte, error) {
	v := h.Get(name)
	if v == "" {
		return nil, fmt.Errorf("PCS response lacks the %s header", name)
	}
	dec, err := url.QueryUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("%s header: %w", name, err)
	}
	var out [][]byte
	rest := []byte(dec)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s header: %w", name, err)
		}
		out = append(out, blk.Bytes)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s header holds no certificate", name)
	}
	return out, nil
}

// Collateral downloads everything a TdxEvidence needs for the platform
// whose PCK certificate is pck.
func (f *Fetcher) Collateral(ctx context.Context, pck *x509.Certificate) (*Collateral, error) {
	ext, err := pcs.PckCertificateExtensions(pck)
	if err != nil {
		return nil, fmt.Errorf("PCK certificate extensions: %w", err)
	}
	ca := "platform"
	if strings.Contains(pck.Issuer.CommonName, "Processor") {
		ca = "processor"
	}
	var col Collateral
	body, h, err := f.get(ctx, pcs.TcbInfoURL(ext.FMSPC))
	if err != nil {
		return nil, fmt.Errorf("TDX TCB Info: %w", err)
	}
	if col.TCB.Certs, err = issuerChain(h, tcbChainHdr); err != nil {
		return nil, err
	}
	col.TCB.Report = body
	if body, h, err = f.get(ctx, pcs.QeIdentityURL()); err != nil {
		return nil, fmt.Errorf("TDX QE Identity: %w", err)
	}
	if col.QEIdentity.Certs, err = issuerChain(h, qeIDChainHdr); err != nil {
		return nil, err
	}
	col.QEIdentity.Report = body
	for _, u := range []string{RootCACRLURL, pcs.PckCrlURL(ca)} {
		b, _, err := f.get(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("CRL: %w", err)
		}
		if _, err := x509.ParseRevocationList(b); err != nil {
			return nil, fmt.Errorf("CRL from %s does not parse: %w", u, err)
		}
		col.CRLs = append(col.CRLs, envelope.CrlListEntry{URL: u, CRL: b})
	}
	return &col, nil
}

// ErrNoQuote is returned by Refresh without a quote to identify the platform.
var ErrNoQuote = errors.New("need a TDX quote to identify the platform (run inside a TDX guest)")

// Refresh fetches the collateral for the platform that produced quote and
// stores it in the cache.
func Refresh(ctx context.Context, c *Cache, f *Fetcher, quote []byte) (*Collateral, error) {
	if len(quote) == 0 {
		return nil, ErrNoQuote
	}
	pck, err := PCKCertificate(quote)
	if err != nil {
		return nil, err
	}
	col, err := f.Collateral(ctx, pck)
	if err != nil {
		return nil, err
	}
	return col, c.Put(col)
}
