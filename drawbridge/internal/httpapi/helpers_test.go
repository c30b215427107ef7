package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/bulkconn"
	"github.com/enarx-go/enarx/internal/oidctest"
)

const (
	testAudience = "testserver"
	testSubject  = "test|subject"
)

// pki is a CA with helpers to issue certificates.
type pki struct {
	ca   *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          testSerial(),
		Subject:               pkix.Name{CommonName: "drawbridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &pki{ca: ca, key: key, pool: pool}
}

func testSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// issue signs a leaf certificate from tmpl (serial, validity and key
// filled in) with the CA.
func (p *pki) issue(t testing.TB, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = testSerial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *pki) serverCert(t testing.TB) tls.Certificate {
	return p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

func (p *pki) clientCert(t testing.TB) tls.Certificate {
	return p.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "keep"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// client returns a client that offers HTTP/2 (the server only speaks
// HTTP/1.1).
func (p *pki) client(certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: p.pool, Certificates: certs},
		DisableCompression: true,
	}
	// As the enarx client dials (drawbridge/client.NewHTTPClient).
	tr.DialTLSContext = bulkconn.DialTLS(&net.Dialer{}, &tr.TLSClientConfig)
	return &http.Client{Transport: tr}
}

// env is a registry on 127.0.0.1 with an OIDC provider and clients.
type env struct {
	t      testing.TB
	oidc   *oidctest.Provider
	pki    *pki
	url    string // https://127.0.0.1:PORT/api/v0.1.0
	base   string // https://127.0.0.1:PORT
	anon   *http.Client
	cert   *http.Client // trusted client certificate
	token  string       // owner token with every scope
	reg    *store.Registry
	srv    *httptest.Server
	logBuf *bytes.Buffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	fs, err := store.OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, fs)
}

// newEnvOn serves a registry on b.
func newEnvOn(t testing.TB, b store.Backend) *env {
	t.Helper()
	e := &env{t: t, oidc: oidctest.New(t), pki: newPKI(t), logBuf: &bytes.Buffer{}}
	e.reg = store.NewRegistry(b)
	t.Cleanup(func() { e.reg.Close() })
	v, err := NewOIDCVerifier(context.Background(), e.oidc.Issuer, testAudience, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(syncWriter{e.logBuf}, nil))
	e.reg.Logger = logger
	h, err := New(Config{Registry: e.reg, Tokens: v, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(h)
	e.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{e.pki.serverCert(t)},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    e.pki.pool,
	}
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected in some tests
	e.srv.TLS.NextProtos = []string{"http/1.1"}        // as server.Run serves: HTTP/1.1 only
	if envListener != nil {
		e.srv.Listener = envListener(e.srv.Listener)
	}
	e.srv.Listener = Listener(e.srv.Listener) // as server.Run serves
	e.srv.Config.ConnContext = ConnContext
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL
	e.url = e.srv.URL + "/api/v0.1.0"
	e.anon = e.pki.client()
	e.cert = e.pki.client(e.pki.clientCert(t))
	e.token = e.mint(oidctest.Claims{Subject: testSubject, Scope: oidctest.AllScopes})
	return e
}

// envListener, if set, wraps the TCP listener of the envs made next.
var envListener func(net.Listener) net.Listener

// syncWriter is a buffer safe for the server's concurrent log writes.
type syncWriter struct{ b *bytes.Buffer }

var logMu = make(chan struct{}, 1)

func (w syncWriter) Write(p []byte) (int, error) {
	logMu <- struct{}{}
	defer func() { <-logMu }()
	return w.b.Write(p)
}

func (e *env) mint(c oidctest.Claims) string {
	if c.Audience == nil {
		c.Audience = []string{testAudience}
	}
	return e.oidc.Token(e.t, c)
}

type resp struct {
	proto string
	code  int
	h     http.Header
	body  []byte
	te    []string
	cl    int64
}

// req sends a request. hdr may set Content-Type / Content-Digest; a
// Content-Length is always sent for a non-nil body.
func (e *env) req(c *http.Client, method, path, token string, body []byte, hdr map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	res, err := c.Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{proto: res.Proto, code: res.StatusCode, h: res.Header, body: b, te: res.TransferEncoding, cl: res.ContentLength}
}

func (e *env) expect(r resp, code int, what string) {
	e.t.Helper()
	if r.code != code {
		e.t.Fatalf("%s: status %d, want %d (%s)", what, r.code, code, r.body)
	}
}

// putJSON PUTs a record with a Content-Digest of all algorithms.
func (e *env) putEntity(c *http.Client, path, token, ctype string, body []byte) resp {
	d, _ := types.Compute(body)
	return e.req(c, http.MethodPut, path, token, body, map[string]string{"Content-Type": ctype, "Content-Digest": d.String()})
}

func (e *env) setup(user, subject, token string, repos map[string]bool) {
	e.t.Helper()
	e.expect(e.putEntity(e.anon, "/"+user, token, "application/json", []byte(`{"subject":"`+subject+`"}`)), 201, "PUT user")
	for r, public := range repos {
		e.expect(e.putEntity(e.anon, "/"+user+"/"+r, token, "application/json", []byte(`{"public":`+strconv.FormatBool(public)+`}`)), 201, "PUT repo")
	}
}

// testPackage is a nested tree (upstream refuses nesting; we allow it).
func testPackage(t testing.TB, salt string) []types.Node {
	fsys := fstest.MapFS{
		"p/main.wasm":           {Data: []byte("\x00asm\x01\x00\x00\x00" + salt)},
		"p/Enarx.toml":          {Data: []byte("args = [\"x\"]\n")},
		"p/test-file.txt":       {Data: []byte("text")},
		"p/test-dir-1/a.json":   {Data: []byte("{not json")},
		"p/test-dir-1/sub/b.42": {Data: []byte(strings.Repeat("b", 5000))},
		"p/empty":               {Mode: os.ModeDir},
	}
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if nodes[i].File != "" {
			nodes[i].Content = fsys[nodes[i].File].Data
		}
	}
	return nodes
}

// publish uploads a tree like upstream's client: tag first, then nodes in
// order.
func (e *env) publish(c *http.Client, repoPath, tag, token string, nodes []types.Node) {
	e.t.Helper()
	entry, _ := nodes[0].Entry.MarshalJSON()
	e.expect(e.putEntity(c, repoPath+"/_tag/"+tag, token, types.EntryType, entry), 201, "PUT tag")
	for _, n := range nodes {
		e.expect(e.putNode(c, repoPath, tag, token, n), 201, "PUT node /"+n.Path.String())
	}
}

func (e *env) putNode(c *http.Client, repoPath, tag, token string, n types.Node) resp {
	return e.req(c, http.MethodPut, repoPath+"/_tag/"+tag+"/tree/"+n.Path.String(), token, n.Content, map[string]string{
		"Content-Type":   n.Entry.Type,
		"Content-Digest": n.Entry.Digest.String(),
	})
}

func mapFS(wasm []byte) fstest.MapFS {
	return fstest.MapFS{"p/main.wasm": {Data: wasm}}
}

func newDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func storeRef(u, r, t string) store.TagRef {
	return store.TagRef{User: types.UserName(u), Repo: types.RepoName(r), Tag: types.TagName(t)}
}
