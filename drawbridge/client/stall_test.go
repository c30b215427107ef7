package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// stallingRegistry serves handle on a TLS server on 127.0.0.1; release is
// closed when the test ends (before the server closes), so a handler may
// wait on it forever.
func stallingRegistry(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *Client {
	t.Helper()
	release := make(chan struct{})
	cl := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) { handle(w, r, release) }, Options{})
	t.Cleanup(func() { close(release) }) // runs first: handlers return, Close can wait for them
	return cl
}

// shortStall makes StallTimeout short for one test. The verdicts do not
// depend on it: a stalled registry never moves again, and the context
// each test runs under is only a safety net against the hang the watch
// prevents.
func shortStall(t *testing.T) context.Context { return stallAfter(t, 50*time.Millisecond) }

// stallAfter sets StallTimeout to d for one test.
func stallAfter(t *testing.T, d time.Duration) context.Context {
	old := StallTimeout
	StallTimeout = d
	t.Cleanup(func() { StallTimeout = old })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantStalled(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("err = %v, want a stall (%v)", err, ErrStalled)
	}
}

// TestStalledResponseBody: a registry that sends a response's headers and
// then nothing fails the request once it has made no progress for
// StallTimeout (before, enarx deploy and package fetch waited forever: the
// transport only bounds the wait for headers). Also for an error body,
// and for a body that stops half way.
func TestStalledResponseBody(t *testing.T) {
	entry := types.Entry{Meta: types.Meta{Digest: types.Digests{types.SHA256: make([]byte, 32)}, Length: 4, Type: types.WasmType}}
	body, _ := entry.MarshalJSON()
	sum, _ := types.Compute(body)
	for _, c := range []struct {
		name string
		sent int // bytes sent before stalling
		code int
	}{{"nothing", 0, http.StatusOK}, {"half", len(body) / 2, http.StatusOK}, {"error body", 0, http.StatusNotFound}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := shortStall(t)
			cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				w.Header().Set("Content-Digest", sum.String())
				w.Header().Set("Content-Type", types.EntryType)
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(c.code)
				w.Write(body[:c.sent])
				w.(http.Flusher).Flush()
				<-release
			})
			spec, _ := ParsePackageSpec(cl.Host() + "/u/r:1.0.0")
			_, err := cl.GetTag(ctx, spec)
			if c.code != http.StatusOK {
				// The status is the error; the body only adds to it.
				if ctx.Err() != nil || !IsStatus(err, c.code) {
					t.Fatalf("err = %v, want the %d without waiting for the body", err, c.code)
				}
				return
			}
			wantStalled(t, err)
		})
	}
}

// TestTrickledResponseBody: a registry that sends a byte now and then
// (each of which restarted the watch before) fails the request once a
// window of StallTimeout moved fewer than StallMinBytes. The trickle
// never reaches StallMinBytes, whatever the scheduling.
func TestTrickledResponseBody(t *testing.T) {
	// Bytes come 100 times per window: the old watch, restarted by each,
	// never fired.
	ctx := stallAfter(t, 2*time.Second)
	cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		w.Header().Set("Content-Digest", "sha-256=:"+strings.Repeat("A", 43)+"=:")
		w.Header().Set("Content-Type", types.EntryType)
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			w.Write([]byte{' '})
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-release:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	spec, _ := ParsePackageSpec(cl.Host() + "/u/r:1.0.0")
	_, err := cl.GetTag(ctx, spec)
	wantStalled(t, err)
}

// TestStallWatchPausesAfterUpload: once a request body has been sent, the
// watch waits for the response (bounded by the response header timeout)
// instead of counting the registry's thinking time as a stall; it starts
// again with the response.
func TestStallWatchPausesAfterUpload(t *testing.T) {
	// The window leaves the client ample time to read the empty response
	// body once the headers arrive; the answer comes after more than one.
	ctx := stallAfter(t, time.Second)
	cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(1500 * time.Millisecond) // a window and a half without a byte
		w.WriteHeader(http.StatusCreated)
	})
	body := []byte(`{"public":true}`)
	sum, n := types.Compute(body)
	meta := types.Meta{Digest: sum, Length: n, Type: "application/json"}
	if err := cl.put(ctx, cl.url("u", "r"), "", meta, bytes.NewReader(body)); err != nil {
		t.Fatalf("a registry that answers after its header timeout's share: %v", err)
	}
}

// TestStallWatchStartsWithResponse: a request without a body is watched
// from its response's headers on (the dial, TLS handshake and header
// timeouts bound what comes before): with a watch of a nanosecond, a
// registry's 404 still arrives, its body then cut. Before, the watch ran
// from the start, and a short one (or a loaded machine) ended the
// request before any answer.
func TestStallWatchStartsWithResponse(t *testing.T) {
	ctx := stallAfter(t, time.Nanosecond)
	cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusNotFound)
		w.(http.Flusher).Flush()
		<-release
	})
	spec, _ := ParsePackageSpec(cl.Host() + "/u/r:1.0.0")
	if _, err := cl.GetTag(ctx, spec); ctx.Err() != nil || !IsStatus(err, http.StatusNotFound) {
		t.Fatalf("err = %v, want the registry's 404", err)
	}
}

// TestStalledUpload: a registry that stops reading a request body fails
// the upload once it has made no progress for StallTimeout (before,
// enarx package publish blocked in write(2) forever).
func TestStalledUpload(t *testing.T) {
	ctx := shortStall(t)
	cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		<-release // reads nothing, answers nothing
	})
	const size = 1 << 30 // far more than the socket buffers hold
	meta := types.Meta{Digest: types.Digests{types.SHA256: make([]byte, 32)}, Length: size, Type: types.WasmType}
	err := cl.put(ctx, cl.url("u", "r", "_tag", "1.0.0", "tree"), "", meta, io.LimitReader(zeros{}, size))
	wantStalled(t, err)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestWatchKeepsRetries: a small upload still carries GetBody (through the
// watch), so the transport can resend it on a kept-alive connection the
// registry closed before the request was written.
func TestWatchKeepsRetries(t *testing.T) {
	var got [][]byte
	cl := stallingRegistry(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, b)
		w.WriteHeader(http.StatusCreated)
	})
	body := []byte(`{"public":true}`)
	sum, n := types.Compute(body)
	meta := types.Meta{Digest: sum, Length: n, Type: "application/json"}
	var req *http.Request
	orig := cl.hc.Transport
	cl.hc = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		req = r
		return orig.RoundTrip(r)
	})}
	if err := cl.put(context.Background(), cl.url("u", "r"), "", meta, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if req.GetBody == nil {
		t.Fatal("no GetBody")
	}
	rc, _ := req.GetBody()
	again, _ := io.ReadAll(rc)
	if !bytes.Equal(again, body) || len(got) != 1 || !bytes.Equal(got[0], body) {
		t.Fatalf("GetBody gave %q, server got %q", again, got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
