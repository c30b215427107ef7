package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// TestFileBucketOneProcess: a file:// bucket, whose conditional creates are
// not atomic across processes, is taken by one registry at a time, like a
// store directory; closing the registry frees it.
func TestFileBucketOneProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := openStore(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := openStore(ctx, "file://"+dir); err == nil {
		second.Close()
		t.Fatal("a second registry opened the same file:// bucket")
	} else if !strings.Contains(err.Error(), "in use by another drawbridge process") {
		t.Fatalf("second open: %v", err)
	}
	first.Close()
	third, err := openStore(ctx, "file://"+dir)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	third.Close()
	if _, err := openStore(ctx, "file://"+filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing bucket directory opened")
	}
	// Other schemes are not locked.
	m1, err := openStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
}

// TestDevRefusesProductionFlags: --dev ignores a server certificate and an
// OIDC issuer (it makes its own and trusts only its own tokens), so a
// production command line or config file that also says dev is refused
// rather than served as a dev registry.
func TestDevRefusesProductionFlags(t *testing.T) {
	for _, tc := range []struct {
		flag string
		set  func(*Options)
	}{
		{"--cert", func(o *Options) { o.Cert = "server.pem" }},
		{"--key", func(o *Options) { o.Key = "server-key.pem" }},
		{"--oidc-issuer", func(o *Options) { o.OIDCIssuer = "https://auth.example.com/" }},
		{"--oidc-audience", func(o *Options) { o.OIDCAudience = "https://store.example.com/" }},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := Options{Dev: true, Store: dir, Addr: "127.0.0.1:0", Ready: func(net.Addr) { cancel() }}
			tc.set(&o)
			err := Run(ctx, o)
			if err == nil || !strings.Contains(err.Error(), tc.flag) || !strings.Contains(err.Error(), "--dev") {
				t.Fatalf("Run with --dev and %s: %v", tc.flag, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused start created the store: %v", err)
			}
		})
	}
}

// TestMaxConnections: Options.MaxConns bounds the connections the registry
// holds; at the bound an idle keep-alive connection is closed for a new
// one (through TLS and the bulk connection beneath it).
func TestMaxConnections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Dev: true, Store: t.TempDir(), Addr: "127.0.0.1:0", MaxConns: 1,
			Logger: slog.New(slog.DiscardHandler), Ready: func(a net.Addr) { ready <- a }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-done:
		t.Fatalf("drawbridge exited: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("drawbridge did not start")
	}
	testutil.CheckIdleMakesRoom(t, func() net.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, "drawbridge.test", "/_version", "MaxConns 1")
}
