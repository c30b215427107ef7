package snp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// KDSBaseURL is AMD's Key Distribution Service.
const KDSBaseURL = "https://kdsintf.amd.com"

// ProductLines are the product lines whose CRLs the cache holds.
var ProductLines = []string{"Milan", "Genoa", "Turin"}

// maxKDSBody bounds a KDS response (a VCEK is ~1.3 KiB, a CRL ~1 KiB).
const maxKDSBody = 64 << 10

// Fetcher downloads collateral from AMD's KDS, politely: AMD allows about
// one request per 10 seconds per address, so requests are spaced by
// MinInterval and 429/503 answers back off (honouring Retry-After) a
// bounded number of times.
type Fetcher struct {
	Client      *http.Client  // nil: a client with a 30 s timeout
	BaseURL     string        // default KDSBaseURL (tests point it at 127.0.0.1)
	MinInterval time.Duration // default 10 s
	Attempts    int           // per request, default 4
	// Sleep waits (tests replace it); nil uses a context-aware timer.
	Sleep func(ctx context.Context, d time.Duration) error

	mu   sync.Mutex
	last time.Time
}

func (f *Fetcher) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (f *Fetcher) url(u string) string {
	if f.BaseURL != "" {
		return strings.Replace(u, KDSBaseURL, strings.TrimSuffix(f.BaseURL, "/"), 1)
	}
	return u
}

// reserve books the next request slot and returns how long to wait for
// it: requests, concurrent ones included, start at least interval apart.
func (f *Fetcher) reserve(interval time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	next := now
	if !f.last.IsZero() && f.last.Add(interval).After(now) {
		next = f.last.Add(interval)
	}
	f.last = next
	return next.Sub(now)
}

// get fetches one KDS URL with spacing and backoff.
func (f *Fetcher) get(ctx context.Context, rawURL string) ([]byte, error) {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	interval := f.MinInterval
	if interval == 0 {
		interval = 10 * time.Second
	}
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	u := f.url(rawURL)
	backoff := interval
	var lastErr error
	for i := 0; i < attempts; i++ {
		if err := f.sleep(ctx, f.reserve(interval)); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			lastErr = err
		} else {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxKDSBody+1))
			resp.Body.Close()
			switch {
			case rerr != nil:
				lastErr = rerr
			case resp.StatusCode == http.StatusOK && len(body) > maxKDSBody:
				return nil, fmt.Errorf("GET %s: response larger than %d bytes", u, maxKDSBody)
			case resp.StatusCode == http.StatusOK:
				return body, nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
				lastErr = fmt.Errorf("GET %s: %s (AMD KDS rate limit)", u, resp.Status)
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && time.Duration(s)*time.Second > backoff {
					backoff = time.Duration(s) * time.Second
				}
			default:
				return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
			}
		}
		if i+1 < attempts {
			if err := f.sleep(ctx, backoff); err != nil {
				return nil, err
			}
			backoff *= 2
		}
	}
	return nil, fmt.Errorf("AMD KDS: gave up after %d attempts: %w", attempts, lastErr)
}

// VCEK downloads the VCEK for id.
func (f *Fetcher) VCEK(ctx context.Context, id Identity) ([]byte, error) {
	b, err := f.get(ctx, kds.VCEKCertURL(id.ProductLine, id.ChipID[:], id.ReportedTCB))
	if err != nil {
		return nil, err
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("AMD KDS returned a VCEK that is not a DER certificate: %w", err)
	}
	return b, nil
}

// CRL downloads the VCEK CRL of a product line; it returns the URL it
// used (upstream's CrlList key) and the DER CRL.
func (f *Fetcher) CRL(ctx context.Context, productLine string) (string, []byte, error) {
	u := kds.CrlLinkByKey(productLine, abi.VcekReportSigner)
	b, err := f.get(ctx, u)
	if err != nil {
		return "", nil, err
	}
	if _, err := x509.ParseRevocationList(b); err != nil {
		return "", nil, fmt.Errorf("AMD KDS returned a CRL for %s that does not parse: %w", productLine, err)
	}
	return u, b, nil
}

// RefreshResult says what Refresh did.
type RefreshResult struct {
	VCEKFetched bool
	CRLsFetched []string // product lines
}

// Refresh makes sure the cache holds the VCEK for id (if id is non-nil)
// and unexpired CRLs for every product line, consulting the cache first
// and fetching only what is missing or expires within a day (or
// everything, with force).
func Refresh(ctx context.Context, c *Cache, f *Fetcher, id *Identity, force bool) (*RefreshResult, error) {
	res := &RefreshResult{}
	if id != nil {
		if _, err := c.VCEK(*id); err != nil || force {
			v, err := f.VCEK(ctx, *id)
			if err != nil {
				return res, fmt.Errorf("fetching the VCEK: %w", err)
			}
			if err := c.PutVCEK(*id, v); err != nil {
				return res, err
			}
			res.VCEKFetched = true
		}
	}
	have := map[string]envelope.CrlListEntry{}
	if l, err := c.CRLs(); err == nil {
		for _, e := range l {
			have[e.URL] = e
		}
	}
	soon := c.now().Add(24 * time.Hour)
	var out envelope.CrlList
	var errs []error
	for _, pl := range ProductLines {
		u := kds.CrlLinkByKey(pl, abi.VcekReportSigner)
		if e, ok := have[u]; ok && !force {
			if crl, err := x509.ParseRevocationList(e.CRL); err == nil && crl.NextUpdate.After(soon) {
				out = append(out, e)
				continue
			}
		}
		_, b, err := f.CRL(ctx, pl)
		if err != nil {
			errs = append(errs, err)
			if e, ok := have[u]; ok {
				out = append(out, e) // keep the old one rather than nothing
			}
			continue
		}
		out = append(out, envelope.CrlListEntry{URL: u, CRL: b})
		res.CRLsFetched = append(res.CRLsFetched, pl)
	}
	if len(out) > 0 {
		if err := c.PutCRLs(out); err != nil {
			return res, err
		}
	}
	return res, errors.Join(errs...)
}
