package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/config"
)

func pemOf(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// serveEcho accepts TLS connections with cfg on 127.0.0.1 and echoes one
// message per connection. It returns the address.
func serveEcho(t *testing.T, cfg *tls.Config) string {
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
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echo dials addr with cfg, sends a message and checks it comes back.
func echo(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg := []byte("hello keep")
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return nil, err
	}
	if !bytes.Equal(got, msg) {
		return nil, io.ErrUnexpectedEOF
	}
	st := c.ConnectionState()
	return &st, nil
}

func listenFile(opts *config.TLSOptions) config.File {
	return config.File{Kind: config.KindListen, Name: "ingest", Prot: config.ProtTLS, Port: 0, TLS: opts}
}

func TestListenTLSWithStewardClientAuth(t *testing.T) {
	st, ts := startFakeSteward(t, true)
	w := testWorkload()
	keep, err := Establish(t.Context(), Request{Steward: ts.URL, Workload: w, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := keep.ServerTLS(listenFile(&config.TLSOptions{ClientAuth: "steward", ALPN: []string{"echo/1"}}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveEcho(t, cfg)

	stewardOnly := x509.NewCertPool()
	stewardOnly.AddCert(st.ca.cert)

	// Another Keep (a Steward-issued client certificate) gets in and checks
	// the workload the server runs.
	peer, err := Establish(t.Context(), Request{Steward: ts.URL, Workload: w, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := echo(addr, &tls.Config{RootCAs: stewardOnly, ServerName: "localhost",
		Certificates: []tls.Certificate{peer.Certificate()}, NextProtos: []string{"echo/1"}})
	if err != nil {
		t.Fatalf("steward-issued client: %v", err)
	}
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "echo/1" {
		t.Errorf("version %x, ALPN %q", cs.Version, cs.NegotiatedProtocol)
	}
	got, _, err := certext.FromCertificate(cs.PeerCertificates[0])
	if err != nil || got == nil || !bytes.Equal(got.WasmSHA256, w.WasmSHA256) || !bytes.Equal(got.ConfigSHA256, w.ConfigSHA256) {
		t.Fatalf("server workload identity %+v, %v", got, err)
	}

	// No client certificate: refused.
	if _, err := echo(addr, &tls.Config{RootCAs: stewardOnly, ServerName: "localhost"}); err == nil {
		t.Error("client without a certificate accepted")
	}
	// A certificate from another CA: refused.
	other := newTestCA(t, "Other CA")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := tls.Certificate{Certificate: [][]byte{other.issue(t, &k.PublicKey, nil, nil).Raw}, PrivateKey: k}
	if _, err := echo(addr, &tls.Config{RootCAs: stewardOnly, ServerName: "localhost",
		Certificates: []tls.Certificate{foreign}}); err == nil {
		t.Error("client with a foreign certificate accepted")
	}
	// A self-signed Keep: refused.
	self, _ := Establish(t.Context(), Request{Workload: w})
	if _, err := echo(addr, &tls.Config{RootCAs: stewardOnly, ServerName: "localhost",
		Certificates: []tls.Certificate{self.Certificate()}}); err == nil {
		t.Error("self-signed client accepted")
	}
	// TLS 1.2: refused.
	if _, err := echo(addr, &tls.Config{RootCAs: stewardOnly, ServerName: "localhost", MaxVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{peer.Certificate()}}); err == nil {
		t.Error("TLS 1.2 accepted")
	}
}

func TestListenTLSWithClientCA(t *testing.T) {
	keep, err := Establish(t.Context(), Request{Workload: testWorkload()})
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "Tenant CA")
	cfg, err := keep.ServerTLS(listenFile(&config.TLSOptions{ClientAuth: "ca", ClientCA: pemOf(ca.cert)}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveEcho(t, cfg)
	trustKeep := x509.NewCertPool()
	trustKeep.AddCert(keep.Chain()[0])
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := tls.Certificate{Certificate: [][]byte{ca.issue(t, &k.PublicKey, nil, nil).Raw}, PrivateKey: k}
	if _, err := echo(addr, &tls.Config{RootCAs: trustKeep, ServerName: "localhost", Certificates: []tls.Certificate{good}}); err != nil {
		t.Fatalf("tenant client: %v", err)
	}
	other := newTestCA(t, "Tenant CA") // same name, different key
	bad := tls.Certificate{Certificate: [][]byte{other.issue(t, &k.PublicKey, nil, nil).Raw}, PrivateKey: k}
	if _, err := echo(addr, &tls.Config{RootCAs: trustKeep, ServerName: "localhost", Certificates: []tls.Certificate{bad}}); err == nil {
		t.Fatal("client from an impostor CA accepted")
	}
}

func TestListenTLSSelfSignedNoClientAuth(t *testing.T) {
	keep, err := Establish(t.Context(), Request{Workload: testWorkload()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := keep.ServerTLS(listenFile(nil))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveEcho(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(keep.Chain()[0])
	if _, err := echo(addr, &tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
}

func TestConnectTLSCustomCA(t *testing.T) {
	ca := newTestCA(t, "Backend CA")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert := tls.Certificate{Certificate: [][]byte{ca.issue(t, &k.PublicKey, []string{"backend.test"}, nil).Raw}, PrivateKey: k}
	addr := serveEcho(t, &tls.Config{Certificates: []tls.Certificate{srvCert}, NextProtos: []string{"h2", "x"},
		ClientAuth: tls.RequestClientCert})

	keep, err := Establish(t.Context(), Request{Workload: testWorkload()})
	if err != nil {
		t.Fatal(err)
	}
	connect := func(opts *config.TLSOptions) (*tls.ConnectionState, error) {
		cfg, err := keep.ClientTLS(config.File{Kind: config.KindConnect, Name: "backend", Prot: config.ProtTLS, Host: "127.0.0.1", TLS: opts})
		if err != nil {
			return nil, err
		}
		return echo(addr, cfg)
	}
	cs, err := connect(&config.TLSOptions{CA: pemOf(ca.cert), ServerName: "backend.test", ALPN: []string{"x"}})
	if err != nil {
		t.Fatalf("custom CA: %v", err)
	}
	if cs.NegotiatedProtocol != "x" || cs.Version != tls.VersionTLS13 {
		t.Errorf("ALPN %q version %x", cs.NegotiatedProtocol, cs.Version)
	}
	if _, err := connect(&config.TLSOptions{CA: pemOf(ca.cert), ServerName: "other.test"}); err == nil {
		t.Error("wrong server name accepted")
	}
	if _, err := connect(&config.TLSOptions{CA: pemOf(ca.cert)}); err == nil {
		t.Error("IP host without IP SAN accepted")
	}
	if _, err := connect(&config.TLSOptions{ServerName: "backend.test"}); err == nil {
		t.Error("server under a private CA accepted with the Mozilla roots")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	keep, err := Establish(t.Context(), Request{Workload: testWorkload()})
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "CA")
	keyPEM := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	for name, opts := range map[string]*config.TLSOptions{
		"steward without steward": {ClientAuth: "steward"},
		"unknown mode":            {ClientAuth: "optional"},
		"ca without PEM":          {ClientAuth: "ca"},
		"ca with a key":           {ClientAuth: "ca", ClientCA: keyPEM},
		"ca with garbage":         {ClientAuth: "ca", ClientCA: pemOf(ca.cert) + "junk"},
		"client_ca without ca":    {ClientCA: pemOf(ca.cert)},
	} {
		_, err := keep.ServerTLS(listenFile(opts))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: error echoes PEM content: %v", name, err)
		}
	}
	if _, err := keep.ClientTLS(config.File{Kind: config.KindConnect, Name: "x"}); err == nil {
		t.Error("connect without host or server_name accepted")
	}
	if _, err := keep.ClientTLS(config.File{Kind: config.KindConnect, Name: "x", Host: "h", TLS: &config.TLSOptions{CA: "nope"}}); err == nil {
		t.Error("bad ca accepted")
	}
	if _, err := keep.ClientTLS(listenFile(nil)); err == nil {
		t.Error("client config for a listen entry")
	}
	if _, err := keep.ServerTLS(config.File{Kind: config.KindConnect, Host: "h"}); err == nil {
		t.Error("server config for a connect entry")
	}
}

func TestMozillaRoots(t *testing.T) {
	// The embedded bundle is non-trivial and is not the (possibly empty)
	// system pool.
	if n := len(mozillaRoots().Subjects()); n < 100 { //nolint:staticcheck // not a system pool
		t.Fatalf("%d Mozilla roots", n)
	}
}
