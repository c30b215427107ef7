package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/identity"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/steward"
)

// keepSAN is the DNS name the test Steward puts into issued certificates
// (its --san); clients verify the Keep by it.
const keepSAN = "keep.test"

// testSteward is the real Steward, in debug mode (self-issued CA) with the
// no-hardware verifier, serving HTTPS on 127.0.0.1.
type testSteward struct {
	ca  *steward.CA
	srv *httptest.Server
}

func startSteward(t testing.TB) *testSteward {
	t.Helper()
	ca, err := steward.GenerateCA("steward.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return startStewardWith(t, ca, kvm.Options{})
}

// startStewardWith runs the real Steward with the given CA and options of
// the no-hardware verifier.
func startStewardWith(t testing.TB, ca *steward.CA, opts kvm.Options) *testSteward {
	t.Helper()
	s, err := steward.New(steward.Config{CA: ca, Verifiers: []attest.Verifier{kvm.New(opts)}, SANs: []string{keepSAN}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &testSteward{ca: ca, srv: ts}
}

// roots is a pool holding only the Steward CA.
func (s *testSteward) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.Chain[0])
	return p
}

// establish is keep.Options.Identity for a Keep that talks to this Steward:
// the test Steward's HTTPS certificate is not under a Mozilla root, so the
// Keep is given a client that trusts it.
func (s *testSteward) establish(ctx context.Context, r identity.Request) (*identity.Identity, error) {
	r.HTTPClient = s.srv.Client()
	return identity.Establish(ctx, r)
}

// peer is another party holding a Steward-issued certificate (a client of
// the Keep under client_auth = "steward").
func (s *testSteward) peer(t testing.TB) tls.Certificate {
	t.Helper()
	w := testWorkload()
	id, err := identity.Establish(t.Context(), identity.Request{Steward: s.srv.URL, Workload: w, HTTPClient: s.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return id.Certificate()
}

// wasm builds an example workload and returns its bytes.
func wasm(t testing.TB, example string) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.BuildWasm(t, filepath.Join("..", "..", "examples", example)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdio returns host files for stdin (empty), stdout and stderr (temporary
// files the test can read).
func stdio(t testing.TB) (stdin, stdout, stderr *os.File) {
	t.Helper()
	var err error
	if stdin, err = os.Open(os.DevNull); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if stdout, err = os.Create(filepath.Join(dir, "stdout")); err != nil {
		t.Fatal(err)
	}
	if stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); stdout.Close(); stderr.Close() })
	return stdin, stdout, stderr
}

// hostListener opens what the host side (hostio) would pass for a listen
// entry: a listening TCP socket on 127.0.0.1, as an *os.File.
func hostListener(t testing.TB) (*os.File, int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}

// hostConn opens what the host side would pass for a connect entry.
func hostConn(t testing.TB, addr string) *os.File {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// cacheDir is a compilation cache shared by this package's Keeps, so each
// example is compiled once per machine, not once per test.
func cacheDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(os.TempDir(), "enarx-identity-e2e-cache")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// running is a Keep running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	stderr *os.File
}

// startKeep runs w under keep.Run until the test ends.
func startKeep(t testing.TB, w keep.Workload, o keep.Options, stderr *os.File) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), stderr: stderr}
	go func() {
		_, err := keep.Run(ctx, w, o)
		r.done <- err
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the Keep and waits for keep.Run to return.
func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Minute): // a hang, not a timing assertion
		t.Errorf("keep.Run did not return after cancellation; workload stderr:\n%s", r.output())
	}
}

func (r *running) output() string {
	b, _ := os.ReadFile(r.stderr.Name())
	return string(b)
}

// tlsEchoServer serves a native Go TLS echo server on 127.0.0.1 until the
// test ends and returns its address.
func tlsEchoServer(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// echoOnce sends msg over c and checks that it comes back.
func echoOnce(c net.Conn, msg []byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}
