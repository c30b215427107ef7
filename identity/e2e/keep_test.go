package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/keep"
)

const stdioConfig = `
[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"
`

// echoConfig is an Enarx.toml for examples/tls-echo.
func echoConfig(stewardURL string, port int, extra string) []byte {
	return fmt.Appendf(nil, "steward = %q\n%s\n[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tls\"\naddr = \"127.0.0.1\"\nport = %d\n%s\n",
		stewardURL, stdioConfig, port, extra)
}

// startEcho runs examples/tls-echo in a Keep with the given Steward and
// extra [[files]] keys for the listen entry; it returns the address to dial
// and the workload's identity as a relying party expects it.
func startEcho(t *testing.T, st *testSteward, extra string) (string, certext.Workload) {
	t.Helper()
	mod := wasm(t, "tls-echo")
	ln, port := hostListener(t)
	cfg := echoConfig(st.srv.URL, port, extra)
	in, out, errf := stdio(t)
	startKeep(t, keep.Workload{Wasm: mod, Config: cfg},
		keep.Options{Files: []*os.File{in, out, errf, ln}, Identity: st.establish, CacheDir: cacheDir(t)}, errf)
	ws, cs := sha256.Sum256(mod), sha256.Sum256(cfg)
	return fmt.Sprintf("127.0.0.1:%d", port), certext.Workload{WasmSHA256: ws[:], ConfigSHA256: cs[:]}
}

func TestKeepServesTLSWithStewardChain(t *testing.T) {
	st := startSteward(t)
	addr, want := startEcho(t, st, "")

	// The relying party trusts only the Steward CA, and checks which
	// workload it talks to.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: st.roots(), ServerName: keepSAN})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs := c.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x", cs.Version)
	}
	w, att, err := certext.FromCertificate(cs.PeerCertificates[0])
	if err != nil || w == nil || att == nil {
		t.Fatalf("keep certificate extensions: %v, %v, %v", w, att, err)
	}
	if !bytes.Equal(w.WasmSHA256, want.WasmSHA256) || !bytes.Equal(w.ConfigSHA256, want.ConfigSHA256) || w.Package != "" {
		t.Fatalf("workload identity %x/%x, want %x/%x", w.WasmSHA256, w.ConfigSHA256, want.WasmSHA256, want.ConfigSHA256)
	}
	if att.Claims.Kind != attest.KindNone || att.Claims.HardwareBacked || !att.StewardDebug {
		t.Errorf("attested as %+v", att)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	for range 3 {
		if err := echoOnce(c, msg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeepMutualTLSWithStewardClients(t *testing.T) {
	st := startSteward(t)
	addr, _ := startEcho(t, st, `client_auth = "steward"`+"\n"+`alpn = ["echo/1"]`)
	peer := st.peer(t)

	dial := func(certs []tls.Certificate) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: st.roots(), ServerName: keepSAN,
			Certificates: certs, NextProtos: []string{"echo/1"}})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not an assertion
		if p := c.ConnectionState().NegotiatedProtocol; p != "echo/1" {
			return fmt.Errorf("ALPN %q", p)
		}
		// In TLS 1.3 the server's verdict on the client certificate
		// arrives after the client's handshake completes: exchange data.
		return echoOnce(c, []byte("ping"))
	}
	if err := dial([]tls.Certificate{peer}); err != nil {
		t.Fatalf("steward-issued client: %v", err)
	}
	if err := dial(nil); err == nil {
		t.Fatal("client without a certificate was served")
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	selfSigned := selfSignedCert(t, k, "intruder")
	if err := dial([]tls.Certificate{selfSigned}); err == nil {
		t.Fatal("client with a self-signed certificate was served")
	}
	// The Keep keeps serving after refusing clients.
	if err := dial([]tls.Certificate{peer}); err != nil {
		t.Fatalf("steward-issued client after refusals: %v", err)
	}
}

func selfSignedCert(t *testing.T, k *ecdsa.PrivateKey, cn string) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// backendServer is a TLS echo server whose certificate, for backend.test,
// is issued by a private CA. It returns its address and the CA as PEM.
func backendServer(t *testing.T) (string, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := selfSignedCert(t, caKey, "Backend CA")
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"backend.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlsEchoServer(t, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}},
		MinVersion:   tls.VersionTLS13,
	})
	return addr, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
}

func TestKeepConnectTLSWithCustomCA(t *testing.T) {
	addr, caPEM := backendServer(t)
	mod := wasm(t, "tls-client")
	_, port, _ := net.SplitHostPort(addr)
	run := func(extra string) (int, string, error) {
		cfg := fmt.Appendf(nil, "%s\n[[files]]\nname = \"backend\"\nkind = \"connect\"\nprot = \"tls\"\nhost = \"127.0.0.1\"\nport = %s\n%s\n",
			stdioConfig, port, extra)
		in, out, errf := stdio(t)
		code, err := keep.Run(t.Context(), keep.Workload{Wasm: mod, Config: cfg},
			keep.Options{Files: []*os.File{in, out, errf, hostConn(t, addr)}, Args: []string{"hello", "backend"}, CacheDir: cacheDir(t)})
		b, _ := os.ReadFile(out.Name())
		return code, string(b), err
	}

	code, out, err := run(fmt.Sprintf("server_name = \"backend.test\"\nca = '''\n%s'''", caPEM))
	if err != nil || code != 0 || out != "hello backend\n" {
		t.Fatalf("custom CA: exit %d, stdout %q, err %v", code, out, err)
	}
	// Without the CA the Mozilla roots apply and the server is refused
	// before the workload starts.
	code, out, err = run(`server_name = "backend.test"`)
	if err == nil || code == 0 || out != "" || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without ca: exit %d, stdout %q, err %v", code, out, err)
	}
	// The wrong name is refused too.
	code, _, err = run(fmt.Sprintf("server_name = \"other.test\"\nca = '''\n%s'''", caPEM))
	if err == nil || code == 0 {
		t.Fatalf("wrong server_name: exit %d, err %v", code, err)
	}
}
