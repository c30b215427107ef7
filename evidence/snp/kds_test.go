package snp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKDS serves VCEKs and CRLs like kdsintf.amd.com, rate limiting the
// first requests with 429.
type fakeKDS struct {
	mu       sync.Mutex
	vcek     []byte
	crl      []byte
	limited  int
	requests []string
}

func (k *fakeKDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = append(k.requests, r.URL.Path)
	if k.limited > 0 {
		k.limited--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/crl"):
		w.Write(k.crl)
	case strings.HasPrefix(r.URL.Path, "/vcek/v1/Milan/") && r.URL.Query().Get("blSPL") != "":
		w.Write(k.vcek)
	default:
		http.NotFound(w, r)
	}
}

func TestRefreshFetchesOnceThenUsesCache(t *testing.T) {
	r := signer(t)
	crl, err := r.CRL(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKDS{vcek: r.VCEK.Raw, crl: crl, limited: 1}
	srv := httptest.NewServer(k)
	defer srv.Close()
	var slept []time.Duration
	f := &Fetcher{BaseURL: srv.URL, Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	c := &Cache{Dir: t.TempDir()}
	raw, _ := r.SignReport([64]byte{}, emulatedOpts())
	id, err := IdentifyReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Refresh(context.Background(), c, f, &id, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.VCEKFetched || len(res.CRLsFetched) != len(ProductLines) {
		t.Fatalf("first refresh: %+v", res)
	}
	// One 429 with Retry-After: 1 s must have caused a back-off of ≥ 1 s,
	// and consecutive requests are spaced.
	var backedOff bool
	for _, d := range slept {
		if d >= time.Second {
			backedOff = true
		}
	}
	if !backedOff {
		t.Fatalf("no back-off after 429: slept %v", slept)
	}
	if _, err := c.VCEK(id); err != nil {
		t.Fatal(err)
	}
	n := len(k.requests)
	res, err = Refresh(context.Background(), c, f, &id, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.VCEKFetched || len(res.CRLsFetched) != 0 || len(k.requests) != n {
		t.Fatalf("second refresh went to the network: %+v, %d requests", res, len(k.requests)-n)
	}
	if _, err := Refresh(context.Background(), c, f, &id, true); err != nil {
		t.Fatal(err)
	}
	if len(k.requests) == n {
		t.Fatal("forced refresh did not fetch")
	}
}

func TestFetcherRejectsGarbage(t *testing.T) {
	k := &fakeKDS{vcek: []byte("nope"), crl: []byte("nope")}
	srv := httptest.NewServer(k)
	defer srv.Close()
	f := &Fetcher{BaseURL: srv.URL, Sleep: func(context.Context, time.Duration) error { return nil }}
	if _, err := f.VCEK(context.Background(), Identity{ProductLine: "Milan"}); err == nil {
		t.Fatal("garbage VCEK accepted")
	}
	if _, _, err := f.CRL(context.Background(), "Milan"); err == nil {
		t.Fatal("garbage CRL accepted")
	}
}

func TestFetcherGivesUpWhenRateLimited(t *testing.T) {
	k := &fakeKDS{limited: 100}
	srv := httptest.NewServer(k)
	defer srv.Close()
	f := &Fetcher{BaseURL: srv.URL, Attempts: 3, Sleep: func(context.Context, time.Duration) error { return nil }}
	_, _, err := f.CRL(context.Background(), "Milan")
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("got %v", err)
	}
}

// Concurrent requests through one Fetcher are spaced too: each books its
// own slot, so no two of them are let through together.
func TestFetcherSpacesConcurrentRequests(t *testing.T) {
	r := signer(t)
	crl, err := r.CRL(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&fakeKDS{crl: crl})
	defer srv.Close()
	const interval = time.Hour
	var mu sync.Mutex
	var waits []time.Duration
	f := &Fetcher{BaseURL: srv.URL, MinInterval: interval, Sleep: func(_ context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}}
	const n = 4
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, _, err := f.CRL(context.Background(), "Milan"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// The Sleep above does not sleep, so the bookings are all made "now":
	// the i-th request waits about i intervals.
	slices.Sort(waits)
	if len(waits) != n-1 {
		t.Fatalf("waits %v: want %d (the first request goes at once)", waits, n-1)
	}
	for i, w := range waits {
		if want := time.Duration(i+1) * interval; w < want-time.Minute || w > want {
			t.Fatalf("request %d waited %v, want about %v (all waits: %v)", i+1, w, want, waits)
		}
	}
}
