package keep_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestListenTLS(t *testing.T) { eachEngine(t, testListenTLS) }

func testListenTLS(t *testing.T) {
	port := freePort(t)
	cfg := fmt.Sprintf(`
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "ingest"
kind = "listen"
prot = "tls"
addr = "127.0.0.1"
port = %d
`, port)
	payload := make([]byte, 1<<20+123)
	rand.Read(payload)
	done := make(chan error, 1)
	go func() {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// First a client that does not speak TLS: the Keep drops it after
		// the failed handshake, in the background, and the guest, which
		// never sees it, keeps serving.
		var raw net.Conn
		var err error
		for i := 0; i < 400; i++ {
			if raw, err = net.Dial("tcp", addr); err == nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if err != nil {
			done <- err
			return
		}
		raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		raw.SetReadDeadline(time.Now().Add(time.Minute))
		io.ReadAll(raw)
		raw.Close()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		st := c.ConnectionState()
		if st.Version != tls.VersionTLS13 {
			done <- fmt.Errorf("TLS version %x", st.Version)
			return
		}
		if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "localhost" {
			done <- fmt.Errorf("unexpected keep certificate %v", st.PeerCertificates)
			return
		}
		go func() { c.Write(payload); c.CloseWrite() }()
		got, err := io.ReadAll(c)
		if err != nil {
			done <- err
			return
		}
		if !bytes.Equal(got, payload) {
			done <- fmt.Errorf("echo returned %d bytes that differ from the %d sent", len(got), len(payload))
			return
		}
		done <- nil
	}()
	r := run(t, workload(t, "tlslisten"), cfg, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.err != nil || r.code != 0 || !strings.HasPrefix(r.stdout, fmt.Sprintf("echoed %d bytes", len(payload))) {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
}

// serverCert makes a self-signed certificate for localhost.
func serverCert(t *testing.T) (tls.Certificate, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test server"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemText
}

func TestConnectTLS(t *testing.T) { eachEngine(t, testConnectTLS) }

func testConnectTLS(t *testing.T) {
	cert, caPEM := serverCert(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 15)
		io.ReadFull(c, buf)
		fmt.Fprintf(c, "server got %q over TLS 1.3=%v\n", buf, c.(*tls.Conn).ConnectionState().Version == tls.VersionTLS13)
	}()
	cfg := fmt.Sprintf(`
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "stream"
kind = "connect"
prot = "tls"
host = "localhost"
port = %d
ca = """
%s"""
`, l.Addr().(*net.TCPAddr).Port, caPEM)
	r := run(t, workload(t, "tlsconnect"), cfg, nil)
	want := "server got \"hello over tls\\n\" over TLS 1.3=true\n"
	if r.err != nil || r.code != 0 || r.stdout != want {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
}

func TestConnectTLSUntrustedServer(t *testing.T) { eachEngine(t, testConnectTLSUntrustedServer) }

func testConnectTLSUntrustedServer(t *testing.T) {
	cert, _ := serverCert(t)
	_, otherCA := serverCert(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg := fmt.Sprintf("[[files]]\nname = \"stream\"\nkind = \"connect\"\nprot = \"tls\"\nhost = \"localhost\"\nport = %d\nca = \"\"\"\n%s\"\"\"\n",
		l.Addr().(*net.TCPAddr).Port, otherCA)
	r := run(t, workload(t, "tlsconnect"), cfg, nil)
	if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "certificate") {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
}
