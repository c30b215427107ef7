package client

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

// TestRequestErrorNamesURLOnce: a request that fails before any answer (no
// registry listening) names its method and URL once. The error repeated
// them, the HTTP client's own naming inside ours (GET URL: Get "URL":
// dial tcp ...), and stays a *url.Error with the cause for callers.
func TestRequestErrorNamesURLOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := New(host, Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParsePackageSpec(host + "/u/r:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetTag(context.Background(), spec)
	if err == nil {
		t.Fatal("GetTag from a closed port succeeded")
	}
	if n := strings.Count(err.Error(), "https://"+host); n != 1 {
		t.Errorf("the error names the URL %d times, want once: %v", n, err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the error is not a *url.Error with ECONNREFUSED: %v", err)
	}
}
